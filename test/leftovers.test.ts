import { describe, expect, it } from 'vitest';
import { startStandIn } from './helpers/stand-in.ts';

describe('the leftovers registry of the test helpers', () => {
  let left = '';

  it('lets a test leave a fixture running', async () => {
    left = (await startStandIn((_request, response) => void response.end('up'))).url;
    expect(await (await fetch(left)).text()).toBe('up');
  });

  it('has disposed it once that test ended', async () => {
    expect(left).not.toBe('');
    await expect(fetch(left)).rejects.toThrow();
  });
});
