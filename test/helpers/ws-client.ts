import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { track } from './leftovers.ts';

/** A graphql-ws client over a real socket to the gateway, carrying `key` in connectionParams; registered with the leftovers. */
export function connectWs(gatewayUrl: string, key: string | null, options: { retryAttempts?: number } = {}): Client {
  const client = createClient({
    url: `${gatewayUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: key ? { authorization: `Bearer ${key}` } : {},
    retryAttempts: options.retryAttempts ?? 0,
    lazy: true,
  });
  track(() => client.dispose());
  return client;
}

/** A raw WebSocket to `url`, registered with the leftovers (terminated after the test or file). */
export function openSocket(url: string, protocols?: string | string[], options?: WebSocket.ClientOptions): WebSocket {
  const socket = new WebSocket(url, protocols, options);
  track(() => socket.terminate());
  return socket;
}

/** One subscription's record: every result, whether it completed, and how to leave. */
export interface Watch {
  results: Array<{ data?: any; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }>;
  completed: boolean;
  error: unknown;
  /** `__typename:status:progress` of each result, or the error code. */
  states(): string[];
  unsubscribe(): void;
}

export const WATCH = `subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } } }`;

/** Subscribes to `taskUpdated(id)` and records what arrives. */
export function watch(client: Client, id: string, query = WATCH): Watch {
  const record: Watch = {
    results: [],
    completed: false,
    error: undefined,
    states: () =>
      record.results.map((result) =>
        result.errors
          ? `error:${result.errors[0]?.extensions?.code}`
          : `${result.data.taskUpdated.__typename}:${result.data.taskUpdated.status}:${result.data.taskUpdated.progress}`,
      ),
    unsubscribe: () => undefined,
  };
  record.unsubscribe = client.subscribe(
    { query, variables: { id } },
    {
      next: (result) => record.results.push(result as Watch['results'][number]),
      error: (error) => {
        record.error = error;
      },
      complete: () => {
        record.completed = true;
      },
    },
  );
  return record;
}
