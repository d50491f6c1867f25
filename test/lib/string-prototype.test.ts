import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { spawnEntry } from '../helpers/spawn.ts';

/** Runs a scenario of the probe in its own process (V8's prototypes are per process) and returns its steps. */
async function probe(scenario: string): Promise<Record<string, boolean>> {
  const child = spawnEntry('test/fixtures/string-prototype-probe.ts', [scenario], {}, { nodeArgs: ['--allow-natives-syntax'] });
  const [exitCode] = child.child.exitCode === null ? await once(child.child, 'exit') : [child.child.exitCode];
  expect(exitCode, child.output()).toBe(0);
  const [line] = await child.waitFor(/^\{.*\}$/m);
  return JSON.parse(line);
}

describe('String.prototype stays a fast-mode object', () => {
  it('a class extending String makes it a dictionary; restoreFastStringPrototype makes it fast again, and may be called again', async () => {
    expect(await probe('subclass')).toEqual({ start: true, subclassed: false, restored: true, again: true });
  });

  it('ioredis alone leaves it a dictionary; the gateway, which imports ioredis, leaves it fast', async () => {
    expect(await probe('ioredis')).toEqual({ start: true, imported: false });
    expect(await probe('gateway')).toEqual({ start: true, imported: true });
  });
});
