import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { track } from './leftovers.ts';

/** What one operation came to over one transport: its first result, or how the WebSocket was closed. */
export interface Outcome {
  status?: number;
  result?: { data?: any; errors?: Array<{ message: string; extensions?: Record<string, any> }> };
  closed?: { code: number; reason: string };
}

export const TRANSPORTS = ['http', 'sse', 'multipart', 'websocket'] as const;
export type Transport = (typeof TRANSPORTS)[number];

const ACCEPT = {
  http: 'application/graphql-response+json',
  sse: 'text/event-stream',
  multipart: 'multipart/mixed;boundary="graphql";subscriptionSpec="1.0",application/json',
};

/**
 * Runs `query` over `transport` with `authorization` (the whole header value, or none) and answers the
 * first result (the stream is then left), or the WebSocket's close. Over HTTP the query runs as is;
 * streams need a subscription.
 */
export async function firstOutcome(
  gatewayUrl: string,
  transport: Transport,
  query: string,
  variables: Record<string, unknown>,
  authorization: string | null,
): Promise<Outcome> {
  if (transport === 'websocket') return overWebSocket(gatewayUrl, query, variables, authorization);
  const controller = new AbortController();
  track(() => controller.abort());
  const response = await fetch(`${gatewayUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT[transport], ...(authorization ? { authorization } : {}) },
    body: JSON.stringify({ query, variables }),
    signal: controller.signal,
  });
  const type = response.headers.get('content-type') ?? '';
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const json = firstJson(type, text);
      if (json !== null) return { status: response.status, result: json };
      const { value, done } = await reader.read();
      if (done) return { status: response.status, result: firstJson(type, `${text}\n\n`) ?? undefined };
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    controller.abort();
  }
}

/** The first complete result in what arrived so far (JSON, an SSE `next` event, or a multipart part's payload), or null. */
function firstJson(type: string, text: string): Outcome['result'] | null {
  if (type.includes('text/event-stream')) {
    const match = /event: next\ndata: (.*)\n\n/.exec(text);
    return match ? JSON.parse(match[1]!) : null;
  }
  if (type.includes('multipart/mixed')) {
    for (const part of text.split('--graphql').slice(1, -1)) {
      const body = part.split('\r\n\r\n')[1]?.trim();
      if (body && body !== '{}') {
        const parsed = JSON.parse(body);
        return parsed.payload ?? { errors: parsed.errors };
      }
    }
    return null;
  }
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

async function overWebSocket(
  gatewayUrl: string,
  query: string,
  variables: Record<string, unknown>,
  authorization: string | null,
): Promise<Outcome> {
  const client = createClient({
    url: `${gatewayUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: authorization ? { authorization } : {},
    retryAttempts: 0,
    lazy: true,
  });
  track(() => client.dispose());
  try {
    return await new Promise<Outcome>((resolve, reject) => {
      client.subscribe(
        { query, variables },
        {
          next: (result) => resolve({ result: result as Outcome['result'] }),
          error: (error) => {
            const event = error as { code?: number; reason?: string };
            if (typeof event.code === 'number') resolve({ closed: { code: event.code, reason: event.reason ?? '' } });
            else reject(error);
          },
          complete: () => reject(new Error('completed before any result')),
        },
      );
    });
  } finally {
    await client.dispose();
  }
}

/** The refusal an outcome carries: `UNAUTHENTICATED` with its reason and message (status 401 over HTTP), or the WebSocket's 4403. */
export function refusalOf(outcome: Outcome): { code: unknown; reason?: unknown; message: string } | null {
  if (outcome.closed) {
    const [, reason, message] = /^([A-Z_]+): (.*)$/s.exec(outcome.closed.reason) ?? [undefined, undefined, outcome.closed.reason];
    return outcome.closed.code === 4403 ? { code: 4403, reason, message: message! } : null;
  }
  const error = outcome.result?.errors?.[0];
  if (error?.extensions?.code !== 'UNAUTHENTICATED') return null;
  return {
    code: outcome.status === 401 ? 'UNAUTHENTICATED/401' : `UNAUTHENTICATED/${outcome.status}`,
    reason: error.extensions.reason,
    message: error.message,
  };
}
