import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { spawnEntry } from '../helpers/spawn.ts';

describe('a WebSocket client that breaks the protocol', () => {
  it('is closed without a word on stderr or stdout: no stack, no path, nothing past the log level', { timeout: 30_000 }, async () => {
    const gateway = spawnEntry('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' });
    const [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/)) as unknown as [string, string];
    const before = gateway.output().length;
    for (let i = 0; i < 3; i++) {
      const socket = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      socket.on('error', () => undefined);
      await once(socket, 'open');
      // Past the 64 KiB message limit, before connection_init, with no credential.
      socket.send('x'.repeat(70_000));
      const [code] = await once(socket, 'close');
      expect(code).toBe(1009);
    }
    // The gateway still answers, and said nothing about it.
    expect((await fetch(`${url.replace('/graphql', '')}/healthz`)).status).toBe(200);
    expect(gateway.output().slice(before)).toBe('');
  });
});
