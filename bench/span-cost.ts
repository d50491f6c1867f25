/**
 * What one poll's span costs with nothing else in the process: the exchange
 * tracer of `src/telemetry/upstream-spans.ts` begins and ends a poll's client
 * span (a root linked to its operation, the attributes of an answered GET) at
 * the gateway's poll rate, and the SDK records, batches, encodes and exports it
 * to the bench's receiver. Beside it, the same loop with tracing off. Forked
 * once per setup (the SDK's provider is global) and driven over IPC.
 * BENCH_SPAN_GARBAGE=N parses N task answers per iteration and keeps the last
 * 2,000 iterations' alive, as a gateway's heap would: the span's cost grows
 * with the garbage around it. `encode` times the SDK's own OTLP/protobuf
 * serializer alone on a batch of the same spans, as the exporter sends them,
 * with `String.prototype` as the gateway leaves it, or as ioredis alone would.
 */
import { ROOT_CONTEXT, type Tracer, trace } from '@opentelemetry/api';
import type { RequestScheduler } from '../src/upstream/request-scheduler.ts';

type Command =
  | { type: 'run'; traced: boolean; spans: number }
  | { type: 'encode'; batch: number; batches: number; stringPrototype: 'restored' | 'dictionary' };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** A scheduler that sends at once: the loop measures the span, not a key's queue. */
const direct = {
  run: (_keyHash: string, send: (signal: AbortSignal) => unknown) => send(new AbortController().signal),
} as unknown as RequestScheduler;

process.on('disconnect', () => process.exit(0));
process.on('message', async (command: Command) => {
  if (command.type === 'encode') {
    // What the gateway imports: ioredis, which leaves String.prototype a dictionary, and the module that restores it.
    await import(command.stringPrototype === 'restored' ? '../src/lib/redis-connection.ts' : 'ioredis');
    process.send!({ type: 'encoded', cpuUsPerSpan: await encodingCost(command.batch, command.batches) });
    return;
  }
  const { traced, spans } = command;
  // What an untraced poll would do here instead: build its request's headers.
  const untraced = () => ({ authorization: 'Bearer sk', accept: 'application/json' });
  let one: () => Promise<unknown> = () => direct.run('key', () => Promise.resolve(untraced()), { priority: 'poll' });
  if (traced) {
    // OTEL_EXPORTER_OTLP_ENDPOINT and the rest come from the environment the bench forked this process with.
    const { startTracingSdk } = await import('../src/telemetry/sdk.ts');
    startTracingSdk({ serviceName: 'task-gateway-bench' });
    one = await pollSpans(trace.getTracer('task-gateway'));
  }
  const answer = JSON.stringify({
    task_id: 'task-0123456789',
    status: 'running',
    progress: 42,
    output: { images: Array.from({ length: 8 }, (_, i) => ({ url: `https://cdn.example/${i}.png`, width: 1024 })) },
  });
  const answers = Number(process.env.BENCH_SPAN_GARBAGE ?? 0);
  const live: unknown[][] = [];
  const garbage = () => {
    if (answers === 0) return;
    live.push(Array.from({ length: answers }, () => JSON.parse(answer)));
    if (live.length > 2_000) live.shift();
  };
  // 1,000 spans a second in bursts of 20, as a gateway polling 2,000 tasks every 2 s.
  const pace = async (count: number) => {
    for (let i = 0; i < count; i++) {
      void one();
      garbage();
      if (i % 20 === 19) await sleep(1);
    }
  };
  await pace(5_000);
  await sleep(1_000);
  const before = process.cpuUsage();
  await pace(spans);
  // The batch processor exports what is left within its 5 s delay.
  await sleep(6_000);
  const used = process.cpuUsage(before);
  process.send!({ type: 'result', cpuUsPerSpan: (used.user + used.system) / spans });
});

/**
 * CPU µs per span of the SDK's OTLP/protobuf serializer (what the exporter runs on each batch it
 * sends), on `batch` poll spans made by the exchange tracer, encoded `batches` times in a loop.
 */
async function encodingCost(batch: number, batches: number): Promise<number> {
  const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { ProtobufTraceSerializer } = await import('@opentelemetry/otlp-transformer');
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const one = await pollSpans(provider.getTracer('task-gateway'));
  for (let i = 0; i < batch; i++) await one();
  const spans = exporter.getFinishedSpans();
  if (spans.length !== batch) throw new Error(`expected ${batch} poll spans, got ${spans.length}`);
  let bytes = 0;
  // Warm the serializer up as a long-running gateway would have.
  for (let i = 0; i < 50; i++) bytes += ProtobufTraceSerializer.serializeRequest(spans)?.length ?? 0;
  const before = process.cpuUsage();
  for (let i = 0; i < batches; i++) bytes += ProtobufTraceSerializer.serializeRequest(spans)?.length ?? 0;
  const used = process.cpuUsage(before);
  if (bytes === 0) throw new Error('the serializer wrote nothing');
  await provider.shutdown();
  return (used.user + used.system) / (batch * batches);
}

/** Makes one poll's span as the gateway does: a root client span of the exchange tracer, linked to the operation that started its loop. */
async function pollSpans(tracer: Tracer): Promise<() => Promise<unknown>> {
  const { createExchangeTracer, traceScheduler } = await import('../src/telemetry/upstream-spans.ts');
  const exchanges = createExchangeTracer(tracer, 'http://127.0.0.1:8080');
  const scheduler = traceScheduler(direct, Date.now);
  const origin = trace.setSpan(ROOT_CONTEXT, tracer.startSpan('subscription TaskUpdated'));
  return () =>
    scheduler.run('key', () => Promise.resolve(exchanges.begin('GET', '/v1/tasks/{id}', '/v1/tasks/t').end(200)), {
      priority: 'poll',
      trace: origin,
    });
}
