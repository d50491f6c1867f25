import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { track } from './leftovers.ts';

export interface RecordedRequest {
  method: string;
  /** The raw request target, exactly as it arrived. */
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface StandIn {
  /** Base URL including `/v1`. */
  url: string;
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

/**
 * A small local HTTP server standing in for the upstream where a test must
 * inject a fault the emulator does not produce. It records every request, and
 * is registered with the leftovers.
 */
export async function startStandIn(
  handler: (request: RecordedRequest, response: ServerResponse) => void | Promise<void>,
): Promise<StandIn> {
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const recorded = {
      method: request.method ?? '',
      url: request.url ?? '',
      headers: request.headers,
      body: Buffer.concat(chunks).toString(),
    };
    requests.push(recorded);
    await handler(recorded, response);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const stop = track(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/v1`, requests, stop };
}

/** Answers JSON. */
export function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}
