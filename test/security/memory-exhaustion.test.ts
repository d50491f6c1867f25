import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnEntry } from '../helpers/spawn.ts';

const MiB = 1024 * 1024;

describe('memory exhaustion without a valid key', () => {
  // Each probe is its own process, so that the heap measured is the gateway's alone.
  async function grownMiB(count: number, fields: number): Promise<number> {
    const probe = spawnEntry('test/fixtures/http-memory-probe.ts', [String(count), String(fields)], {}, { nodeArgs: ['--expose-gc'] });
    const [code] = await once(probe.child, 'exit');
    expect(code, probe.output()).toBe(0);
    return JSON.parse(probe.output().trim().split('\n').at(-1)!).grownBytes / MiB;
  }

  it('keeps at most 64 MiB after 60 distinct 250 KB operations over HTTP (over the token limit)', { timeout: 180_000 }, async () => {
    expect(await grownMiB(60, 23_000)).toBeLessThanOrEqual(64);
  });

  it('keeps at most 64 MiB after 60 distinct 100 KB operations just under the token limit (the cache is bounded in characters)', {
    timeout: 180_000,
  }, async () => {
    expect(await grownMiB(60, 9_000)).toBeLessThanOrEqual(64);
  });
});
