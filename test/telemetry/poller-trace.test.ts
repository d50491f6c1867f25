import { context, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTaskPoller } from '../../src/pollers/task-poller.ts';
import { SyncContextManager } from '../../src/telemetry/sync-context.ts';
import { activeTraceContext, createExchangeTracer, traceScheduler } from '../../src/telemetry/upstream-spans.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import { createRequestScheduler } from '../../src/upstream/request-scheduler.ts';
import { createScheduledClient } from '../../src/upstream/scheduled-client.ts';
import { createTasksClient } from '../../src/upstream/tasks-client.ts';
import { createManualClock, createManualScheduler, eventually } from '../helpers/clock.ts';
import { track } from '../helpers/leftovers.ts';
import { startScriptedUpstream } from '../helpers/scripted-upstream.ts';

const ID = 'task-traced-read';
const alice = createCredential('sk-alice-traced-read');

describe("a query's read of a watched task, traced with the gateway's synchronous context manager", () => {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const manager = new SyncContextManager();
  beforeAll(() => {
    context.setGlobalContextManager(manager);
  });
  afterAll(async () => {
    context.disable();
    await provider.shutdown();
  });

  it("is the query's child when the loop it waited for gave its request up and it reads again", async () => {
    const upstream = await startScriptedUpstream(ID);
    const clock = createManualClock();
    const timers = createManualScheduler(clock);
    const tracer = provider.getTracer('test');
    const client = createTasksClient({
      baseUrl: upstream.url,
      timeoutMs: 2_000,
      now: clock.now,
      trace: createExchangeTracer(tracer, upstream.url),
    });
    track(() => client.close());
    const requests = traceScheduler(createRequestScheduler({ now: clock.now, timers }), clock.now);
    track(() => requests.dispose());
    const poller = createTaskPoller({
      client: createScheduledClient(client, requests),
      now: clock.now,
      scheduler: timers,
      traceOrigin: activeTraceContext,
    });
    track(() => poller.dispose());

    // A watcher's loop sends its first read, which hangs.
    upstream.script({ fault: 'hang' });
    const watch = poller.subscribe(alice, ID);
    await eventually(() => expect(upstream.gets()).toBe(1));

    // A query reads the task meanwhile: it waits for the loop's read...
    const query = tracer.startSpan('query Task', {}, ROOT_CONTEXT);
    const reading = context.with(trace.setSpan(ROOT_CONTEXT, query), () => poller.read(alice, ID));
    upstream.script({ status: 'processing', progress: 40 });
    // ...which the loop gives up when its only watcher leaves: the query reads again, after its await.
    await watch.return!();
    await expect(reading).resolves.toMatchObject({ id: ID, status: 'PROCESSING' });
    query.end();

    const gets = exporter.getFinishedSpans().filter((span) => span.name === 'GET /v1/tasks/{id}');
    expect(gets).toHaveLength(2);
    const again = gets.find((span) => span.attributes['http.response.status_code'] === 200)!;
    expect(again.spanContext().traceId).toBe(query.spanContext().traceId);
    expect(again.parentSpanContext?.spanId).toBe(query.spanContext().spanId);
  });
});
