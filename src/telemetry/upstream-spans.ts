import {
  type Context,
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { RequestScheduler } from '../upstream/request-scheduler.ts';
import type { ExchangeTracer, TracedExchange } from '../upstream/tasks-client.ts';

/** What the scheduler tells the exchange about the request it sends: ms it waited, and how many sends came before. */
interface Scheduled {
  readonly waitedMs: number;
  readonly resendCount: number;
}
const scheduledKey = createContextKey('task-gateway.scheduled');

/** Where an attribute of ours goes: beside the conventions' own names, under the service's namespace. */
const WAITED_ATTRIBUTE = 'task_gateway.scheduler.wait_ms';

/**
 * Client spans for upstream exchanges (the OpenTelemetry HTTP client
 * conventions: method, `url.template`, server address, status, resend count),
 * each carrying W3C trace context upstream as `traceparent`. Neither the key
 * nor any header is recorded, nor the task id: only the path's template.
 */
export function createExchangeTracer(tracer: Tracer, baseUrl: string): ExchangeTracer {
  const base = new URL(baseUrl);
  const serverAddress = base.hostname;
  const serverPort = Number(base.port || (base.protocol === 'https:' ? 443 : 80));
  return {
    begin(method, template) {
      const parent = context.active();
      const scheduled = parent.getValue(scheduledKey) as Scheduled | undefined;
      const span = tracer.startSpan(
        `${method} ${template}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'http.request.method': method,
            'url.template': template,
            'server.address': serverAddress,
            'server.port': serverPort,
            ...(scheduled ? { [WAITED_ATTRIBUTE]: scheduled.waitedMs } : {}),
            ...(scheduled && scheduled.resendCount > 0 ? { 'http.request.resend_count': scheduled.resendCount } : {}),
          },
        },
        parent,
      );
      const headers: Record<string, string> = {};
      propagation.inject(trace.setSpan(parent, span), headers);
      return exchange(span, headers);
    },
  };
}

function exchange(span: Span, headers: Record<string, string>): TracedExchange {
  return {
    headers,
    end(status, error) {
      if (status !== null) {
        span.setAttribute('http.response.status_code', status);
        if (status === 429) span.addEvent('upstream rate limited (429)');
        if (status >= 400) span.setStatus({ code: SpanStatusCode.ERROR });
      } else {
        // Only the failure's class: messages of network errors can carry addresses.
        span.setAttribute('error.type', error instanceof Error ? error.name : 'aborted');
        span.setStatus({ code: SpanStatusCode.ERROR });
      }
      span.end();
    },
  };
}

/**
 * The request scheduler with the caller's trace context carried across the
 * key's queue, which may send a request from another request's turn. Reads and
 * writes made for an operation become its children; each poll is a root span
 * of its own (`task poll`), sampled on its own and linked to the operation
 * that started the loop, so that a long watch never grows one trace per
 * watcher or per interval.
 */
export function traceScheduler(scheduler: RequestScheduler, tracer: Tracer, now: () => number): RequestScheduler {
  return {
    ...scheduler,
    run(keyHash, send, hints) {
      const queuedAt = now();
      const caller = context.active();
      let poll: Span | null = null;
      let parent: Context = caller;
      if (hints?.priority === 'poll') {
        const origin = trace.getSpanContext(caller);
        poll = tracer.startSpan(
          'task poll',
          { kind: SpanKind.INTERNAL, root: true, links: origin ? [{ context: origin }] : [] },
          ROOT_CONTEXT,
        );
        parent = trace.setSpan(ROOT_CONTEXT, poll);
      }
      let sends = 0;
      const sent = scheduler.run(
        keyHash,
        (signal) => {
          const scheduled: Scheduled = { waitedMs: now() - queuedAt, resendCount: sends++ };
          return context.with(parent.setValue(scheduledKey, scheduled), send, undefined, signal);
        },
        hints,
      );
      if (!poll) return sent;
      const span = poll;
      return sent.then(
        (value) => {
          span.end();
          return value;
        },
        (error: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR });
          span.setAttribute('error.type', error instanceof Error ? error.name : 'aborted');
          span.end();
          throw error;
        },
      );
    },
  };
}
