import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs } from '../helpers/ws-client.ts';

const KEY = 'sk-weight-bypass';
const SUBMIT = `mutation { submitTask(input: { model: "gpt-image-2", prompt: "a fox" }) { ... on BaseTask { id } } }`;
const MAX = 5;

/** `tasksUpdated(ids: [$v0, …])`: a list of variables, one id each. */
function listOfVariables(count: number) {
  const names = Array.from({ length: count }, (_, i) => `$v${i}`);
  return `subscription(${names.map((name) => `${name}: ID!`).join(', ')}) {
    tasksUpdated(ids: [${names.join(', ')}]) { __typename ... on BaseTask { id status } }
  }`;
}
const variablesFor = (ids: string[]) => Object.fromEntries(ids.map((id, i) => [`v${i}`, id]));

describe('the weight of tasksUpdated, whatever the syntax of its list (MAX_SUBSCRIPTIONS_PER_CONNECTION)', () => {
  let stack: Stack;
  let ids: string[];
  beforeAll(async () => {
    stack = await startStack({ emulator: { queuedMs: 600_000 }, env: { MAX_SUBSCRIPTIONS_PER_CONNECTION: String(MAX) } });
    ids = [];
    for (let i = 0; i <= MAX; i += 1) ids.push((await stack.gql(SUBMIT, {}, KEY)).data.submitTask.id);
  });
  afterAll(() => stack.stop());

  /** Subscribes over WebSocket and resolves with the first result or error. */
  const first = (client: ReturnType<typeof connectWs>, query: string, variables: Record<string, unknown> = {}) =>
    new Promise<string>((resolve) => {
      client.subscribe(
        { query, variables },
        { next: (result) => resolve(JSON.stringify(result)), error: (error) => resolve(JSON.stringify(error)), complete: () => undefined },
      );
    });

  it('counts a list of variables, and a list of Int literals, by its ids over WebSocket', async () => {
    const socket = connectWs(stack.gatewayUrl, KEY);
    // Three ids by three variables: 3 of the 5.
    const three = await first(socket, listOfVariables(3), variablesFor(ids.slice(0, 3)));
    expect(three).toContain('QueuedTask');
    // Three more as Int literals: 6 > 5.
    const literals = await first(socket, `subscription { tasksUpdated(ids: [1, 2, 3]) { __typename } }`);
    expect(literals).toContain('TOO_MANY_SUBSCRIPTIONS');
    // Two fit.
    const two = await first(socket, listOfVariables(2), variablesFor(ids.slice(3, 5)));
    expect(two).toContain('QueuedTask');
    // One list of six variables on a fresh socket is over the limit on its own.
    const six = await first(connectWs(stack.gatewayUrl, KEY), listOfVariables(MAX + 1), variablesFor(ids));
    expect(six).toContain('TOO_MANY_SUBSCRIPTIONS');
  });

  /** Posts a subscription asking for `accept`; resolves with the body read until `until` appears (then leaves). */
  async function overHttp(accept: string, query: string, variables: Record<string, unknown>, until: RegExp) {
    const abort = new AbortController();
    const response = await fetch(`${stack.gatewayUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept, authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ query, variables }),
      signal: abort.signal,
    });
    const decoder = new TextDecoder();
    let body = '';
    try {
      for await (const chunk of response.body!) {
        body += decoder.decode(chunk as Uint8Array, { stream: true });
        if (until.test(body)) break;
      }
    } finally {
      abort.abort();
    }
    return body;
  }

  it.each([
    ['SSE', 'text/event-stream'],
    ['multipart', 'multipart/mixed;subscriptionSpec="1.0", application/json'],
  ])('refuses over %s a subscription heavier than the limit, whatever the syntax of its list', async (_name, accept) => {
    const until = /TOO_MANY_SUBSCRIPTIONS|QueuedTask/;
    expect(await overHttp(accept, listOfVariables(MAX + 1), variablesFor(ids), until)).toContain('TOO_MANY_SUBSCRIPTIONS');
    expect(await overHttp(accept, `subscription { tasksUpdated(ids: [1, 2, 3, 4, 5, 6]) { __typename } }`, {}, until)).toContain(
      'TOO_MANY_SUBSCRIPTIONS',
    );
    const byVariable = `subscription($ids: [ID!]!) { tasksUpdated(ids: $ids) { __typename ... on BaseTask { id } } }`;
    expect(await overHttp(accept, byVariable, { ids }, until)).toContain('TOO_MANY_SUBSCRIPTIONS');
    // Within the limit it runs.
    expect(await overHttp(accept, listOfVariables(MAX), variablesFor(ids.slice(0, MAX)), until)).toContain('QueuedTask');
  });
});
