import { randomBytes } from 'node:crypto';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startIdentityProvider } from '../helpers/identity-provider.ts';
import { type OtlpReceiver, startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { type Spawned, spawnEntry } from '../helpers/spawn.ts';
import { freePort } from '../helpers/stack.ts';
import { json, type StandIn, startStandIn } from '../helpers/stand-in.ts';

const CLIENT_KEY = 'sk-client-secret-traced-0123';
const SERVER_KEY = 'sk-server-secret-traced-4567';
const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const traceparent = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;

function task(id: string, status: string, extra: Record<string, unknown> = {}) {
  return {
    task_id: id,
    status,
    model: 'm',
    action: 'generate',
    progress: status === 'completed' ? 100 : 40,
    created_at: 1_720_000_000,
    ...extra,
  };
}

/** Starts the gateway as `npm start` would, exporting traces to `receiver` with `protocol`. */
async function startTracedGateway(
  upstream: StandIn,
  receiver: OtlpReceiver,
  protocol: string,
  env: Record<string, string> = {},
): Promise<{ url: string; process: Spawned }> {
  const port = await freePort();
  const process = spawnEntry('src/main.ts', [], {
    PORT: String(port),
    HOST: '127.0.0.1',
    UPSTREAM_URL: upstream.url,
    UPSTREAM_API_KEY: SERVER_KEY,
    POLL_INTERVAL_MS: '50',
    POLL_MAX_INTERVAL_MS: '100',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_SERVICE_NAME: 'gateway-under-test',
    ...env,
  });
  // Liveness only: a busy machine can take a while to start a process through tsx.
  await process.waitFor(/task-gateway listening/, 45_000);
  return { url: `http://127.0.0.1:${port}`, process };
}

describe('OpenTelemetry traces, exported over OTLP/HTTP to a real receiver', () => {
  let receiver: OtlpReceiver;
  let upstream: StandIn;
  let gateway: { url: string; process: Spawned };
  const livePolls = new Map<string, number>();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startStandIn((request, response) => {
      const id = decodeURIComponent(request.url.split('/').pop() ?? '');
      if (id === 'task-done') {
        // One result link that is not http(s): the gateway drops it and logs a warning, during the operation.
        return json(response, 200, task(id, 'completed', { result: { images: [{ url: ['ftp://example.com/a.png'] }] } }));
      }
      // Live tasks run for three reads (the shared one for six), then complete.
      const reads = (livePolls.get(id) ?? 0) + 1;
      livePolls.set(id, reads);
      const runs = id === 'task-shared' ? 6 : 3;
      return json(response, 200, reads < runs ? task(id, 'processing') : task(id, 'completed', { result: { images: [] } }));
    });
    gateway = await startTracedGateway(upstream, receiver, 'http/json');
  }, 60_000);
  afterAll(async () => {
    await gateway?.process.stop();
  });

  it("continues the client's trace: the operation's span, its upstream child, and traceparent sent upstream", async () => {
    const traceId = hex(16);
    const clientSpanId = hex(8);
    const answer = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${CLIENT_KEY}`,
        traceparent: traceparent(traceId, clientSpanId),
      },
      body: JSON.stringify({ query: 'query Task($id: ID!) { task(id: $id) { __typename } }', variables: { id: 'task-done' } }),
    });
    expect(await answer.json()).toEqual({ data: { task: { __typename: 'CompletedTask' } } });

    const spans = await receiver.until((all) => all.some((s) => s.traceId === traceId && s.kind === SPAN_KIND_CLIENT));
    const operation = spans.find((s) => s.traceId === traceId && s.name === 'query Task')!;
    expect(operation).toMatchObject({
      parentSpanId: clientSpanId,
      kind: SPAN_KIND_SERVER,
      attributes: { 'graphql.operation.type': 'query', 'graphql.operation.name': 'Task' },
    });
    const request = spans.find((s) => s.traceId === traceId && s.kind === SPAN_KIND_CLIENT)!;
    expect(request).toMatchObject({
      name: 'GET /v1/tasks/{id}',
      parentSpanId: operation.spanId,
      attributes: { 'http.request.method': 'GET', 'url.template': '/v1/tasks/{id}', 'http.response.status_code': 200 },
    });
    expect(request.attributes['task_gateway.scheduler.wait_ms']).toBeGreaterThanOrEqual(0);

    const received = upstream.requests.filter((r) => r.headers.traceparent?.includes(traceId));
    expect(received.map((r) => r.headers.traceparent)).toEqual([traceparent(traceId, request.spanId)]);

    // The warning about the dropped link was written during the operation: it carries its ids.
    const line = (await gateway.process.waitFor(new RegExp(`\\{[^\\n]*"trace_id":"${traceId}"[^\\n]*\\}`)))[0];
    expect(JSON.parse(line)).toMatchObject({
      trace_id: traceId,
      span_id: operation.spanId,
      msg: expect.stringMatching(/dropped a result link/),
    });
  });

  it('makes each poll a root span of its own, linked to the subscription that started the loop', async () => {
    const traceId = hex(16);
    const answer = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', traceparent: traceparent(traceId, hex(8)) },
      body: JSON.stringify({
        query: 'subscription Watch($id: ID!) { taskUpdated(id: $id) { __typename } }',
        variables: { id: 'task-live-sse' },
      }),
    });
    const stream = await answer.text();
    expect(stream).toContain('CompletedTask');
    expect(stream).toContain('event: complete');

    const spans = await receiver.until((all) => {
      const subscription = all.find((s) => s.traceId === traceId && s.name === 'subscription Watch');
      return subscription !== undefined && all.filter((s) => s.links.some((l) => l.spanId === subscription.spanId)).length >= 2;
    });
    const subscription = spans.find((s) => s.traceId === traceId && s.name === 'subscription Watch')!;
    // Each poll's upstream request is the root of a trace of its own, linked to the subscription, never its child.
    const polls = spans.filter((s) => s.kind === SPAN_KIND_CLIENT && s.links.some((l) => l.spanId === subscription.spanId));
    expect(polls.length).toBeGreaterThanOrEqual(2);
    for (const poll of polls) {
      expect(poll.name).toBe('GET /v1/tasks/{id}');
      expect(poll.parentSpanId).toBe('');
      expect(poll.traceId).not.toBe(traceId);
      expect(poll.links).toEqual([{ traceId, spanId: subscription.spanId }]);
    }
    expect(new Set(polls.map((poll) => poll.traceId)).size).toBe(polls.length);
  });

  it("keeps a loop's reads out of the trace of the operation that started it when another joins it", async () => {
    const watch = (traceId: string, name: string) =>
      fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', traceparent: traceparent(traceId, hex(8)) },
        body: JSON.stringify({ query: `subscription ${name} { taskUpdated(id: "task-shared") { __typename } }` }),
      });
    const [first, second] = [hex(16), hex(16)];
    const starter = await watch(first, 'Starter');
    const joiner = await watch(second, 'Joiner');
    expect(await starter.text()).toContain('CompletedTask');
    expect(await joiner.text()).toContain('CompletedTask');

    const spans = await receiver.until((all) => {
      const started = all.find((s) => s.traceId === first && s.name === 'subscription Starter');
      return started !== undefined && all.filter((s) => s.links.some((l) => l.spanId === started.spanId)).length >= 4;
    });
    const started = spans.find((s) => s.traceId === first && s.name === 'subscription Starter')!;
    const joined = spans.find((s) => s.traceId === second && s.name === 'subscription Joiner')!;
    // Every read of the loop, the first and those after the second watcher came, is a root linked to the starter.
    expect(spans.filter((s) => s.kind === SPAN_KIND_CLIENT && s.traceId === first)).toEqual([]);
    const reads = spans.filter((s) => s.kind === SPAN_KIND_CLIENT && s.links.some((l) => l.spanId === started.spanId));
    expect(reads.length).toBeGreaterThanOrEqual(4);
    for (const read of reads) expect(read.parentSpanId).toBe('');
    // A read the joiner asked for as it subscribed would be its own child, never the starter's.
    for (const read of spans.filter((s) => s.kind === SPAN_KIND_CLIENT && s.traceId === second))
      expect(read.parentSpanId).toBe(joined.spanId);
  });

  it("continues a WebSocket operation's trace from the subscribe message's extensions", async () => {
    const traceId = hex(16);
    const clientSpanId = hex(8);
    const client = createClient({ url: `${gateway.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const result = await new Promise((resolve, reject) => {
        client.subscribe(
          {
            query: 'query OverSocket($id: ID!) { task(id: $id) { __typename } }',
            variables: { id: 'task-done' },
            extensions: { traceparent: traceparent(traceId, clientSpanId) },
          },
          { next: resolve, error: reject, complete: () => undefined },
        );
      });
      expect(result).toEqual({ data: { task: { __typename: 'CompletedTask' } } });
    } finally {
      await client.dispose();
    }
    const spans = await receiver.until((all) => all.some((s) => s.traceId === traceId && s.name === 'query OverSocket'));
    expect(spans.find((s) => s.traceId === traceId && s.name === 'query OverSocket')?.parentSpanId).toBe(clientSpanId);
  });

  it('starts a trace of its own for a malformed traceparent (a header, or a subscribe message that is not a string): no error', async () => {
    const garbage = ['garbage', `00-${'0'.repeat(32)}-${hex(8)}-01`, `00-${hex(16)}-${hex(8)}-01-${'x'.repeat(10_000)}`];
    for (const [index, value] of garbage.entries()) {
      const answer = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: value },
        body: JSON.stringify({ query: `query Malformed${index} { task(id: "task-done") { __typename } }` }),
      });
      expect(await answer.json()).toEqual({ data: { task: { __typename: 'CompletedTask' } } });
    }
    const client = createClient({ url: `${gateway.url.replace('http', 'ws')}/graphql`, webSocketImpl: WebSocket, retryAttempts: 0 });
    try {
      const result = await new Promise((resolve, reject) => {
        client.subscribe(
          { query: 'query MalformedOverSocket { task(id: "task-done") { __typename } }', extensions: { traceparent: { not: 'a string' } } },
          { next: resolve, error: reject, complete: () => undefined },
        );
      });
      expect(result).toEqual({ data: { task: { __typename: 'CompletedTask' } } });
    } finally {
      await client.dispose();
    }
    const names = ['query Malformed0', 'query Malformed1', 'query Malformed2', 'query MalformedOverSocket'];
    const spans = await receiver.until((all) => names.every((name) => all.some((s) => s.name === name)));
    for (const name of names) {
      const span = spans.find((s) => s.name === name)!;
      expect(span.parentSpanId).toBe('');
      expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span.traceId).not.toBe('0'.repeat(32));
    }
  });

  it('puts no key, token or variable in any span', async () => {
    await receiver.until((all) => all.length > 0);
    const exported = receiver.bodies.map((b) => b.body.toString()).join('\n');
    expect(exported).toContain('gateway-under-test');
    for (const secret of [CLIENT_KEY, SERVER_KEY, 'task-done', 'task-live-sse', 'Bearer']) expect(exported).not.toContain(secret);
  });
});

describe('traces of signed-in users (jwt mode), whose requests cross awaits before reaching the upstream', () => {
  it("makes a submit's POST the child of its mutation, and links the user's subscription to its polls", { timeout: 60_000 }, async () => {
    const idp = await startIdentityProvider();
    const receiver = await startOtlpReceiver();
    let reads = 0;
    let posts = 0;
    const upstream = await startStandIn((request, response) => {
      if (request.method === 'POST') posts += 1;
      if (request.method === 'POST') return json(response, 200, task('task-of-alice', 'pending'));
      reads += 1;
      return json(response, 200, reads < 3 ? task('task-of-alice', 'processing') : task('task-of-alice', 'completed', { result: {} }));
    });
    const gateway = await startTracedGateway(upstream, receiver, 'http/json', { ...idp.env, USER_MAX_ACTIVE_TASKS: '1' });
    try {
      const authorization = `Bearer ${await idp.sign()}`;
      const submitTrace = hex(16);
      const submitted = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization, traceparent: traceparent(submitTrace, hex(8)) },
        body: JSON.stringify({ query: 'mutation Submit { submitTask(input: { model: "m", prompt: "fox" }) { ... on BaseTask { id } } }' }),
      });
      expect(await submitted.json()).toEqual({ data: { submitTask: { id: 'task-of-alice' } } });
      // A second submit past USER_MAX_ACTIVE_TASKS first re-reads the unfinished task (still running): refused, not sent.
      const refusedTrace = hex(16);
      const refused = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization, traceparent: traceparent(refusedTrace, hex(8)) },
        body: JSON.stringify({ query: 'mutation Again { submitTask(input: { model: "m", prompt: "fox" }) { __typename } }' }),
      });
      expect((await refused.json()).data.submitTask.__typename).not.toBe('PendingTask');
      expect(posts).toBe(1);

      const watchTrace = hex(16);
      const stream = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization,
          traceparent: traceparent(watchTrace, hex(8)),
        },
        body: JSON.stringify({ query: 'subscription Watch { taskUpdated(id: "task-of-alice") { __typename } }' }),
      });
      expect(await stream.text()).toContain('CompletedTask');

      const spans = await receiver.until((all) => {
        const watch = all.find((s) => s.traceId === watchTrace && s.name === 'subscription Watch');
        return (
          all.some((s) => s.traceId === submitTrace && s.kind === SPAN_KIND_CLIENT) &&
          all.some((s) => s.traceId === refusedTrace && s.kind === SPAN_KIND_CLIENT) &&
          watch !== undefined &&
          all.some((s) => s.links.some((l) => l.spanId === watch.spanId))
        );
      });
      // The submit's POST waited for the user's limits and owner records: still the mutation's child.
      const mutation = spans.find((s) => s.traceId === submitTrace && s.name === 'mutation Submit')!;
      const post = spans.find((s) => s.traceId === submitTrace && s.kind === SPAN_KIND_CLIENT)!;
      expect(post).toMatchObject({ name: 'POST /v1/tasks', parentSpanId: mutation.spanId });
      expect(upstream.requests.find((r) => r.method === 'POST')?.headers.traceparent).toBe(traceparent(submitTrace, post.spanId));
      // The refused submit's re-read came after awaits on the user's stores: its child all the same.
      const again = spans.find((s) => s.traceId === refusedTrace && s.name === 'mutation Again')!;
      expect(spans.find((s) => s.traceId === refusedTrace && s.kind === SPAN_KIND_CLIENT)).toMatchObject({
        name: 'GET /v1/tasks/{id}',
        parentSpanId: again.spanId,
      });
      // The watch opened after the owner's lookup: its loop's reads still name the subscription.
      const watch = spans.find((s) => s.traceId === watchTrace && s.name === 'subscription Watch')!;
      const fromLoop = spans.filter((s) => s.kind === SPAN_KIND_CLIENT && s.links.some((l) => l.spanId === watch.spanId));
      expect(fromLoop.length).toBeGreaterThanOrEqual(1);
      for (const read of fromLoop) expect(read).toMatchObject({ parentSpanId: '', links: [{ traceId: watchTrace, spanId: watch.spanId }] });
      // No token in any span.
      expect(receiver.bodies.map((b) => b.body.toString()).join('\n')).not.toContain(authorization.slice('Bearer '.length));
    } finally {
      await gateway.process.stop();
      await upstream.stop();
      await idp.stop();
    }
  });
});

describe('log lines of an operation written after its awaits', () => {
  it("carries the operation's ids on the warning of a submission its store did not take", { timeout: 60_000 }, async () => {
    const receiver = await startOtlpReceiver();
    const upstream = await startStandIn((_request, response) => json(response, 200, task('task-unrecorded', 'pending')));
    // A Redis that is not there: the recent-tasks store refuses the record, after the submit's upstream POST.
    const gateway = await startTracedGateway(upstream, receiver, 'http/json', { REDIS_URL: `redis://127.0.0.1:${await freePort()}` });
    try {
      const traceId = hex(16);
      const answer = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${CLIENT_KEY}`, traceparent: traceparent(traceId, hex(8)) },
        body: JSON.stringify({ query: 'mutation Submit { submitTask(input: { model: "m", prompt: "fox" }) { ... on BaseTask { id } } }' }),
      });
      expect(await answer.json()).toEqual({ data: { submitTask: { id: 'task-unrecorded' } } });
      const line = (await gateway.process.waitFor(new RegExp(`\\{[^\\n]*"trace_id":"${traceId}"[^\\n]*\\}`)))[0];
      const spans = await receiver.until((all) => all.some((s) => s.traceId === traceId && s.name === 'mutation Submit'));
      const mutation = spans.find((s) => s.traceId === traceId && s.name === 'mutation Submit')!;
      expect(JSON.parse(line)).toMatchObject({ span_id: mutation.spanId, msg: expect.stringMatching(/was not recorded yet/) });
    } finally {
      await gateway.process.stop();
      await upstream.stop();
    }
  });
});

describe('OTLP/HTTP with protobuf, the default encoding', () => {
  it('exports spans as application/x-protobuf carrying the trace id of the operation', { timeout: 60_000 }, async () => {
    const receiver = await startOtlpReceiver();
    const upstream = await startStandIn((_request, response) => json(response, 200, task('task-proto', 'completed', { result: {} })));
    const gateway = await startTracedGateway(upstream, receiver, 'http/protobuf');
    try {
      const traceId = hex(16);
      const answer = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: traceparent(traceId, hex(8)) },
        body: JSON.stringify({ query: '{ task(id: "task-proto") { __typename } }' }),
      });
      expect(answer.status).toBe(200);
      const traceBytes = Buffer.from(traceId, 'hex');
      const deadline = Date.now() + 10_000;
      while (!receiver.bodies.some((b) => b.body.includes(traceBytes)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const body = receiver.bodies.find((b) => b.body.includes(traceBytes));
      expect(body?.contentType).toBe('application/x-protobuf');
      expect(upstream.requests[0]?.headers.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));
    } finally {
      await gateway.process.stop();
    }
  });
});
