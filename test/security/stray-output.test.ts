import { afterEach, describe, expect, it } from 'vitest';
import { spawnEntry } from '../helpers/spawn.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';

/** Of each kind: reads, and submits that wait (they follow the gateway's stopping signal). */
const EACH = 12;

describe('nothing but JSON logs leaves the gateway process', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it(`writes nothing to stderr while ${2 * EACH} requests wait on the upstream at once`, { timeout: 180_000 }, async () => {
    // Every answer is held until all the requests are in flight together, then all are answered.
    const held: Array<() => void> = [];
    const upstream: StandIn = await startStandIn(
      (request, response) =>
        new Promise<void>((resolve) => {
          held.push(() => {
            const id = request.method === 'GET' ? request.url.split('/').at(-1) : `task-submitted-${held.length}`;
            // Ended already: a waiting submit returns at once, with no poll after it.
            json(response, 200, {
              task_id: id,
              status: 'cancelled',
              model: 'gpt-image-2',
              action: 'generate',
              progress: 0,
              created_at: 1_720_000_000,
              completed_at: 1_720_000_001,
              cost: 0,
            });
            resolve();
          });
          if (held.length === 2 * EACH) for (const answer of held.splice(0)) answer();
        }),
    );
    cleanups.push(() => upstream.stop());
    const gateway = spawnEntry('src/main.ts', [], {
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      UPSTREAM_URL: upstream.url,
      // Liveness bounds only: on a busy machine the last request may reach the upstream long after the first.
      UPSTREAM_TIMEOUT_MS: '120000',
      UPSTREAM_QUEUE_TIMEOUT_MS: '120000',
    });
    cleanups.push(() => gateway.stop());
    let stderr = '';
    gateway.child.stderr!.on('data', (chunk) => (stderr += chunk));
    const [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/, 60_000)) as unknown as [string, string];

    const operations = Array.from({ length: EACH }, (_, i) => [
      `{ task(id: "task-${i}") { __typename } }`,
      'mutation { submitTask(input: { model: "gpt-image-2", waitSeconds: 30 }) { __typename } }',
    ]).flat();
    const answers = await Promise.all(
      operations.map(async (query, i) => {
        const response = await fetch(`${url}/graphql`, {
          method: 'POST',
          // One key each, so that no key's budget holds any of them back: all are in flight together.
          headers: { 'content-type': 'application/json', authorization: `Bearer sk-stray-${i}` },
          body: JSON.stringify({ query }),
        });
        const { data } = (await response.json()) as any;
        return (data?.task ?? data?.submitTask)?.__typename;
      }),
    );
    expect(answers).toEqual(Array(2 * EACH).fill('CancelledTask'));
    expect(upstream.requests).toHaveLength(2 * EACH);
    expect(await gateway.stop()).toBe(0);
    expect(stderr).toBe('');
  });
});
