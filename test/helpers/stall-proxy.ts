import type { AddressInfo } from 'node:net';
import { createConnection, createServer, type Socket } from 'node:net';
import { track } from './leftovers.ts';

/** A TCP proxy that can stall: connections stay open, bytes stop flowing. */
export interface StallProxy {
  readonly port: number;
  /**
   * Stops forwarding in both directions (what arrives is held), keeping every connection open and
   * accepting new ones; with `subscribersOnly`, only on connections that sent a SUBSCRIBE.
   */
  pause(options?: { subscribersOnly?: boolean }): void;
  /** Forwards what was held, in order, and everything after. */
  resume(): void;
  stop(): Promise<void>;
}

/** Starts a stall proxy to `127.0.0.1:targetPort`; registered with the leftovers. */
export async function startStallProxy(targetPort: number): Promise<StallProxy> {
  const sockets = new Set<Socket>();
  /** What arrived while paused, per destination, in order. */
  const held: Array<{ to: Socket; chunk: Buffer }> = [];
  let paused = false;
  let subscribersOnly = false;
  /** Client sockets that sent a SUBSCRIBE, and the target sockets they talk to. */
  const subscribers = new WeakSet<Socket>();
  const relay = (from: Socket, to: Socket, fromClient: boolean) => {
    from.on('data', (chunk: Buffer) => {
      if (fromClient && /subscribe/i.test(chunk.toString('latin1'))) {
        subscribers.add(from);
        subscribers.add(to);
      }
      if (paused && (!subscribersOnly || subscribers.has(from))) held.push({ to, chunk });
      else if (to.writable) to.write(chunk);
    });
    from.on('error', () => to.destroy());
    from.on('close', () => to.destroy());
  };
  const server = createServer((client) => {
    const target = createConnection(targetPort, '127.0.0.1');
    for (const socket of [client, target]) {
      socket.setNoDelay(true);
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    }
    relay(client, target, true);
    relay(target, client, false);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let stopped: Promise<void> | null = null;
  const proxy: StallProxy = {
    port: (server.address() as AddressInfo).port,
    pause(options = {}) {
      paused = true;
      subscribersOnly = options.subscribersOnly ?? false;
    },
    resume() {
      paused = false;
      for (const { to, chunk } of held.splice(0)) if (to.writable) to.write(chunk);
    },
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
