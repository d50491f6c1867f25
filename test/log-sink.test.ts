import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogSink } from '../src/log-sink.ts';

describe('createLogSink', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0).reverse()) cleanup();
  });
  const dir = () => {
    const path = mkdtempSync(join(tmpdir(), 'log-sink-'));
    cleanups.push(() => rmSync(path, { recursive: true, force: true }));
    return path;
  };

  it('never blocks on a pipe nobody reads: it queues up to its bound, then drops and counts', () => {
    const fifo = join(dir(), 'fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writer = openSync(fifo, 'w');
    cleanups.push(
      () => closeSync(reader),
      () => closeSync(writer),
    );
    const retries: Array<() => void> = [];
    const sink = createLogSink({ fd: writer, maxQueuedBytes: 10_000, schedule: (run) => retries.push(run) });
    const line = `${'x'.repeat(99)}\n`;
    // 1 MB of lines: 64 KiB fit in the pipe, 10 000 bytes in the queue, the rest is dropped.
    for (let i = 0; i < 10_000; i++) sink.write(line);
    const written = 64 * 1024;
    expect(sink.dropped()).toBeGreaterThanOrEqual(10_000 - Math.ceil((written + 10_000) / 100));
    expect(sink.dropped()).toBeLessThan(10_000);
    expect(retries).toHaveLength(1);

    // Once the reader catches up, the queue drains, line by line, whole.
    const buffer = Buffer.alloc(1 << 20);
    let read = 0;
    read += readSync(reader, buffer, read, buffer.length - read, null);
    retries.shift()!();
    read += readSync(reader, buffer, read, buffer.length - read, null);
    const lines = buffer.subarray(0, read).toString().split('\n').filter(Boolean);
    expect(lines.every((text) => text === line.trim())).toBe(true);
    expect(lines.length).toBe(10_000 - sink.dropped());
  });

  it('appends to a file without dropping anything', () => {
    const path = join(dir(), 'log');
    const fd = openSync(path, 'a');
    cleanups.push(() => closeSync(fd));
    const sink = createLogSink({ fd });
    for (let i = 0; i < 1_000; i++) sink.write(`line ${i}\n`);
    expect(sink.dropped()).toBe(0);
    expect(readFileSync(path, 'utf8').split('\n')[999]).toBe('line 999');
  });
});
