import {
  type Attributes,
  context,
  createContextKey,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { RequestScheduler } from '../upstream/request-scheduler.ts';
import type { ExchangeTracer, TracedExchange } from '../upstream/tasks-client.ts';

/**
 * What the scheduler tells the exchange about the request it sends: ms it
 * waited, how many sends came before, and for a poll the operation that
 * started its loop (a poll's span is a root linked to it, never its child).
 */
interface Scheduled {
  readonly waitedMs: number;
  readonly resendCount: number;
  readonly poll?: { readonly origin: SpanContext | undefined };
}
const scheduledKey = createContextKey('task-gateway.scheduled');

/**
 * A poll's scheduling, handed to the exchange without the context manager:
 * the client begins its exchange synchronously inside `send`, so a value set
 * around that call reaches it, and a poll (most of what the gateway sends)
 * pays for no context switch.
 */
let sendingPoll: Scheduled | undefined;

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
      const poll = sendingPoll;
      const parent = poll ? ROOT_CONTEXT : context.active();
      const scheduled = poll ?? (parent.getValue(scheduledKey) as Scheduled | undefined);
      const origin = poll?.poll?.origin;
      const attributes: Attributes = {
        'http.request.method': method,
        'url.template': template,
        'server.address': serverAddress,
        'server.port': serverPort,
      };
      if (scheduled) {
        attributes[WAITED_ATTRIBUTE] = scheduled.waitedMs;
        if (scheduled.resendCount > 0) attributes['http.request.resend_count'] = scheduled.resendCount;
      }
      const span = tracer.startSpan(
        `${method} ${template}`,
        { kind: SpanKind.CLIENT, root: poll !== undefined, links: origin ? [{ context: origin }] : undefined, attributes },
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
 * writes made for an operation become its children. A poll's upstream request
 * is a root span of its own, sampled on its own and linked to the operation
 * that started the loop, so that a long watch never grows one trace per
 * watcher or per interval; polls skip the context manager altogether.
 */
export function traceScheduler(scheduler: RequestScheduler, now: () => number): RequestScheduler {
  return {
    ...scheduler,
    run(keyHash, send, hints) {
      const queuedAt = now();
      const caller = context.active();
      let sends = 0;
      if (hints?.priority === 'poll') {
        const poll = { origin: trace.getSpanContext(caller) };
        return scheduler.run(
          keyHash,
          (signal) => {
            sendingPoll = { waitedMs: now() - queuedAt, resendCount: sends++, poll };
            try {
              return send(signal);
            } finally {
              sendingPoll = undefined;
            }
          },
          hints,
        );
      }
      return scheduler.run(
        keyHash,
        (signal) => {
          const scheduled: Scheduled = { waitedMs: now() - queuedAt, resendCount: sends++ };
          return context.with(caller.setValue(scheduledKey, scheduled), send, undefined, signal);
        },
        hints,
      );
    },
  };
}
