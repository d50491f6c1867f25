import type { AddressInfo } from 'node:net';
import { createConnection, createServer, type Socket } from 'node:net';
import { track } from './leftovers.ts';

export interface DelayProxy {
  /** `127.0.0.1:<port>` of the proxy. */
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface DelayProxyOptions {
  /** Where the proxy forwards to. */
  targetPort: number;
  targetHost?: string;
  /** Delay of the bytes from the client to the target, ms. Default 0. */
  forwardMs?: number;
  /** Delay of the bytes from the target back to the client, ms. Default 0. */
  backMs?: number;
}

/**
 * A TCP proxy that holds each chunk for a fixed time in each direction, in order: a server
 * "100 ms away" (HTTP answers 100 ms late with `backMs: 100`; a Redis round trip 200 ms longer
 * with both at 100). Registered with the leftovers.
 */
export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const { targetPort, targetHost = '127.0.0.1', forwardMs = 0, backMs = 0 } = options;
  const sockets = new Set<Socket>();
  const relay = (from: Socket, to: Socket, delayMs: number) => {
    const later = (action: () => void) => (delayMs > 0 ? setTimeout(action, delayMs) : action());
    from.on('data', (chunk) => later(() => to.writable && to.write(chunk)));
    from.on('end', () => later(() => to.end()));
    from.on('error', () => to.destroy());
    from.on('close', () => later(() => to.destroy()));
  };
  const server = createServer((client) => {
    const target = createConnection(targetPort, targetHost);
    for (const socket of [client, target]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    relay(client, target, forwardMs);
    relay(target, client, backMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | null = null;
  const proxy: DelayProxy = {
    host: `127.0.0.1:${port}`,
    port,
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return stopped;
    },
  };
  track(() => proxy.stop());
  return proxy;
}
