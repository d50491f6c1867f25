/** The operations GraphiQL opens with: submit, query, cancel and subscribe, ready to run. */
export const exampleOperations = `# Welcome to task-gateway. Run an operation with the play button.
# 1. SubmitTask, then copy the returned id into the variables below.
# 2. WatchTask streams every change until the task ends; Task and Cancel read or cancel it.
# 3. RecentTasks lists what this key (signed in: this user) submitted; WatchTasks streams several at once ({"ids": ["task-...", ...]}).
# 4. Viewer: who is signed in (AUTH_MODE=jwt) and where they stand against their per-user limits.

mutation SubmitTask {
  submitTask(input: { model: "gpt-image-2", prompt: "a lighthouse at dawn, watercolour" }) {
    __typename
    ... on BaseTask { id status progress createdAt }
    ... on SubmitLimitError { limit message retryAfterMs resetsAt }
  }
}

query Task($id: ID!) {
  task(id: $id) {
    __typename
    ... on BaseTask { id status progress model action createdAt }
    ... on TerminalTask { completedAt cost }
    ... on CompletedTask { result { images { urls expiresAt expired } videos { urls expiresAt } audios { urls expiresAt } } }
    ... on FailedTask { error { code message retryable } }
  }
}

mutation Cancel($id: ID!) {
  cancelTask(id: $id) {
    __typename
    ... on CancelledTask { id status completedAt }
    ... on TaskNotCancellableError { message task { __typename ... on BaseTask { status progress } } }
    ... on TaskNotFoundError { id message }
  }
}

subscription WatchTask($id: ID!) {
  taskUpdated(id: $id) {
    __typename
    ... on BaseTask { id status progress }
    ... on CompletedTask { result { images { urls expiresAt } videos { urls expiresAt } } }
    ... on FailedTask { error { code message } }
  }
}

query RecentTasks {
  recentTasks(first: 20) {
    edges {
      cursor
      node {
        __typename
        ... on BaseTask { id status progress preConsumedCost }
        ... on ProcessingTask { estimatedCompletionAt }
        ... on TerminalTask { cost }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}

subscription WatchTasks($ids: [ID!]!) {
  tasksUpdated(ids: $ids) {
    __typename
    ... on BaseTask { id status progress }
    ... on ProcessingTask { estimatedCompletionAt }
    ... on TaskNotFoundError { id message }
    ... on TaskWatchError { id code message }
  }
}

query Viewer {
  viewer { id limits { limit max used resetsAt } }
}
`;
