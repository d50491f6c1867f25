import { describe, expect, it } from 'vitest';
import { StopSignal } from '../../src/lib/stop-signal.ts';

describe('StopSignal', () => {
  it('tells each listener still added, once, in order, with its reason; removed ones hear nothing', () => {
    const signal = new StopSignal();
    const heard: string[] = [];
    const first = () => heard.push(`first:${String(signal.reason)}`);
    const removed = () => heard.push('removed');
    const object = { handleEvent: () => heard.push(`object:${signal.aborted}`) };
    signal.addEventListener('abort', first);
    signal.addEventListener('abort', removed);
    signal.addEventListener('abort', object);
    signal.removeEventListener('abort', removed);
    expect(signal.aborted).toBe(false);
    signal.abort('stopped');
    signal.abort('again');
    expect(heard).toEqual(['first:stopped', 'object:true']);
    expect(signal.reason).toBe('stopped');
    // A listener added after the stop is not kept (a request then sees `aborted` first).
    signal.addEventListener('abort', removed);
    signal.abort('later');
    expect(heard).toEqual(['first:stopped', 'object:true']);
  });
});
