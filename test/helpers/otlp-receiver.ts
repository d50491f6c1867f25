import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { track } from './leftovers.ts';

/** One span as an OTLP/HTTP JSON export carries it, flattened. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** OTLP's numbers: 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string }>;
  events: string[];
}

export interface OtlpReceiver {
  /** The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT` (the exporter adds `/v1/traces`). */
  url: string;
  /** Spans decoded from every `http/json` export so far. */
  spans: ReceivedSpan[];
  /** Every export body as it arrived, whatever its encoding. */
  bodies: Array<{ contentType: string; body: Buffer }>;
  /** Resolves with the spans once `predicate` holds over them, polling for at most `withinMs`. */
  until(predicate: (spans: ReceivedSpan[]) => boolean, withinMs?: number): Promise<ReceivedSpan[]>;
  stop(): Promise<void>;
}

type AnyValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };

function plainValue(value: AnyValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  return value.boolValue ?? '';
}

/**
 * A real OTLP/HTTP receiver on port 0, as a collector would be: it accepts
 * `POST /v1/traces`, answers 200, keeps every body, and decodes the JSON
 * encoding (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) into spans.
 */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const bodies: OtlpReceiver['bodies'] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const contentType = request.headers['content-type'] ?? '';
    bodies.push({ contentType, body });
    if (request.url !== '/v1/traces' || request.method !== 'POST') {
      response.writeHead(404).end();
      return;
    }
    if (contentType.startsWith('application/json')) {
      const exported = JSON.parse(body.toString());
      for (const resource of exported.resourceSpans ?? []) {
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              attributes: Object.fromEntries(
                (span.attributes ?? []).map((a: { key: string; value: AnyValue }) => [a.key, plainValue(a.value)]),
              ),
              links: (span.links ?? []).map((link: { traceId: string; spanId: string }) => ({
                traceId: link.traceId,
                spanId: link.spanId,
              })),
              events: (span.events ?? []).map((event: { name: string }) => event.name),
            });
          }
        }
      }
    }
    response
      .writeHead(200, { 'content-type': contentType || 'application/json' })
      .end(contentType.startsWith('application/json') ? '{}' : '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const stop = track(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.on('connection', (socket) => server.once('close', () => socket.destroy()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    bodies,
    async until(predicate, withinMs = 10_000) {
      const deadline = Date.now() + withinMs;
      while (!predicate(spans)) {
        if (Date.now() > deadline) throw new Error(`the spans never matched; received: ${spans.map((s) => s.name).join(', ')}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      return spans;
    },
    stop,
  };
}
