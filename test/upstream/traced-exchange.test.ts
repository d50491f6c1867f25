import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createCredential } from '../../src/upstream/credential.ts';
import { createTasksClient, type ExchangeTracer } from '../../src/upstream/tasks-client.ts';

/** An exchange tracer that records how each exchange was begun and ended, and the headers it asked for. */
function recordingTracer(headers: Record<string, string>) {
  const ends: Array<[number | null, string | undefined]> = [];
  const tracer: ExchangeTracer = {
    begin: () => ({
      headers,
      end: (status, error) => ends.push([status, error instanceof Error ? error.name : undefined]),
      within: (fn) => fn(),
    }),
  };
  return { tracer, ends };
}

let server: Server | null = null;
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => server?.close(resolve));
  server = null;
});

async function listen(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

const credential = createCredential('sk-traced-exchange-0001');
const task = { task_id: 't1', status: 'processing', model: 'm', action: 'generate', progress: 10, created_at: 1_720_000_000 };

describe('a traced upstream exchange', () => {
  it('sends the tracer headers beside its own, and ends the span once with the status', async () => {
    const received: Record<string, string | string[] | undefined>[] = [];
    const url = await listen((request, response) => {
      received.push(request.headers);
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(task));
    });
    const { tracer, ends } = recordingTracer({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'a=b' });
    const client = createTasksClient({ baseUrl: url, trace: tracer });
    await expect(client.getTask('t1', credential)).resolves.toMatchObject({ id: 't1' });
    await client.close();
    expect(received[0]).toMatchObject({
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'a=b',
      authorization: 'Bearer sk-traced-exchange-0001',
      accept: 'application/json',
    });
    expect(ends).toEqual([[200, undefined]]);
  });

  it('ends the span once when the request is aborted before undici starts it', async () => {
    // The server never answers: the request is cut by its caller.
    const url = await listen(() => undefined);
    const { tracer, ends } = recordingTracer({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const client = createTasksClient({ baseUrl: url, trace: tracer });
    const controller = new AbortController();
    const reading = client.getTask('t1', credential, { signal: controller.signal });
    controller.abort(new Error('watcher left'));
    await expect(reading).rejects.toThrow('watcher left');
    // Undici still starts the request, finds it aborted and ends it in an error: nothing more reaches the span.
    // Closing the client waits for every request's last callback.
    await client.close();
    expect(ends).toEqual([[null, 'Error']]);
  });

  it('ends the span once for an answer past the size bound', async () => {
    const url = await listen((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ ...task, padding: 'x'.repeat(4_096) }));
    });
    const { tracer, ends } = recordingTracer({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    const client = createTasksClient({ baseUrl: url, trace: tracer, maxBodyBytes: 1_024 });
    await expect(client.getTask('t1', credential)).rejects.toMatchObject({ code: 'UPSTREAM_INVALID' });
    await client.close();
    expect(ends).toEqual([[null, 'UpstreamInvalidError']]);
  });
});
