import { Agent, request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type Stack, startStack } from '../helpers/stack.ts';

const MiB = 1024 * 1024;
const UNKNOWN = `/webhooks/tasks/${'u'.repeat(32)}`;

interface Upload {
  /** Body bytes the gateway let the client write before it answered and closed. */
  written: number;
  /** The raw answer, headers and body. */
  answer: string;
  /** How the connection ended: 'end' (a clean close after the answer), 'error: <code>', or 'still open'. */
  ending: string;
}

/** Sends a POST declaring `declaredBytes` and writes its body as fast as the gateway takes it. */
function upload(url: string, path: string, declaredBytes: number, headers: Record<string, string> = {}): Promise<Upload> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    const chunk = Buffer.alloc(MiB, 'x');
    let written = 0;
    let answer = '';
    let settled = false;
    const finish = (ending: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ written, answer, ending });
    };
    // On today's code the gateway swallows all of it and keeps the connection: give up after a while.
    const timer = setTimeout(() => finish('still open'), 15_000);
    socket.on('data', (data) => (answer += data));
    socket.on('end', () => finish('end'));
    socket.on('error', (error: NodeJS.ErrnoException) => finish(`error: ${error.code}`));
    const extra = Object.entries(headers)
      .map(([name, value]) => `${name}: ${value}\r\n`)
      .join('');
    socket.write(`POST ${path} HTTP/1.1\r\nhost: ${hostname}\r\ncontent-length: ${declaredBytes}\r\n${extra}\r\n`);
    const pump = () => {
      while (!settled && written < declaredBytes) {
        written += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
    };
    pump();
  });
}

describe('webhook bodies', () => {
  let stack: Stack;
  let callbackPath: string;
  beforeAll(async () => {
    const port = await freePort();
    stack = await startStack({ env: { PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` } });
    const { data } = await stack.gql('mutation { submitTask(input: { model: "gpt-image-2" }) { ... on BaseTask { id } } }', {}, 'sk-hooks');
    callbackPath = new URL(stack.emulator!.callbackUrlOf(data.submitTask.id)!).pathname;
  });
  afterAll(() => stack.stop());

  it.each([
    ['an unknown token', () => UNKNOWN, '404'],
    ['a known token', () => callbackPath, '202'],
  ])(
    'does not swallow a 50 MiB body for %s: it answers, reads no further and closes the connection cleanly',
    {
      timeout: 30_000,
    },
    async (_, path, status) => {
      const { written, answer, ending } = await upload(stack.gatewayUrl, path(), 50 * MiB);
      expect(answer).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(answer.toLowerCase()).toContain('connection: close');
      expect(ending).toBe('end');
      // The limit is 64 KiB; socket buffers on both sides account for the rest.
      expect(written).toBeLessThan(16 * MiB);
    },
  );

  it('keeps a keep-alive connection usable after a body within the limit, and a new one serves the next request after an oversized body', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const post = (path: string, body: string | Buffer) =>
      new Promise<{ status: number; reused: boolean }>((resolve, reject) => {
        const request = httpRequest(`${stack.gatewayUrl}${path}`, { method: 'POST', agent }, (response) => {
          response.resume();
          response.on('end', () => resolve({ status: response.statusCode!, reused: request.reusedSocket }));
        });
        request.on('error', reject);
        request.end(body);
      });
    try {
      expect(await post(UNKNOWN, '{"status":"completed"}')).toEqual({ status: 404, reused: false });
      expect(await post(UNKNOWN, '{"status":"completed"}')).toEqual({ status: 404, reused: true });
      expect((await post(UNKNOWN, Buffer.alloc(MiB))).status).toBe(404);
      expect(await post(callbackPath, '{}')).toEqual({ status: 202, reused: false });
    } finally {
      agent.destroy();
    }
  });
});
