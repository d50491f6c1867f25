import {
  type Attributes,
  type Context,
  context,
  createContextKey,
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

/** The active trace context, for what carries it past an await itself (a poll loop: `ScheduleHints.trace`). */
export const activeTraceContext = (): unknown => context.active();

/** Where an attribute of ours goes: beside the conventions' own names, under the service's namespace. */
const WAITED_ATTRIBUTE = 'task_gateway.scheduler.wait_ms';

/**
 * Client spans for upstream exchanges (the OpenTelemetry HTTP client
 * conventions: method, `url.template`, server address, status, resend count),
 * each carrying W3C trace context upstream as `traceparent` (and `tracestate`
 * when the span has one). Neither the key nor any header is recorded, nor the
 * task id: only the path's template.
 *
 * A poll is most of what the gateway sends, so an exchange costs little: the
 * header is written from the span's context (not through the propagation API,
 * whose other propagators, baggage among them, have nothing to say to the
 * upstream), and a span the sampler dropped gets no attributes and no end.
 * The attributes are set once the span records; the built-in samplers decide
 * on the trace id and the parent alone.
 */
export function createExchangeTracer(tracer: Tracer, baseUrl: string): ExchangeTracer {
  const base = new URL(baseUrl);
  const serverAddress = base.hostname;
  const serverPort = Number(base.port || (base.protocol === 'https:' ? 443 : 80));
  // Span names by template: the client passes the same template strings each time, so a lookup hashes nothing.
  const names = new Map<string, { method: string; name: string }>();
  return {
    begin(method, template) {
      const poll = sendingPoll;
      const parent = poll ? ROOT_CONTEXT : context.active();
      const origin = poll?.poll?.origin;
      let named = names.get(template);
      if (named?.method !== method) {
        named = { method, name: `${method} ${template}` };
        names.set(template, named);
      }
      const span = tracer.startSpan(
        named.name,
        { kind: SpanKind.CLIENT, root: poll !== undefined, links: origin ? [{ context: origin }] : undefined },
        parent,
      );
      const headers = traceHeaders(span.spanContext());
      // The answer is read in the request's context: log lines written then carry its operation's ids.
      const within = poll ? direct : <T>(fn: () => T): T => context.with(parent, fn);
      if (!span.isRecording()) return { headers, end: noEnd, within };
      const scheduled = poll ?? (parent.getValue(scheduledKey) as Scheduled | undefined);
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
      span.setAttributes(attributes);
      return exchange(span, headers, within);
    },
  };
}

const noEnd = () => undefined;
const direct = <T>(fn: () => T): T => fn();

/** W3C trace context of `spanContext`: `traceparent` (version 00), and `tracestate` when there is one. */
function traceHeaders(spanContext: SpanContext): Record<string, string> {
  const flags = spanContext.traceFlags & 0xff;
  const headers: Record<string, string> = {
    traceparent: `00-${spanContext.traceId}-${spanContext.spanId}-${flags < 16 ? '0' : ''}${flags.toString(16)}`,
  };
  const state = spanContext.traceState?.serialize();
  if (state) headers.tracestate = state;
  return headers;
}

function exchange(span: Span, headers: Record<string, string>, within: TracedExchange['within']): TracedExchange {
  return {
    headers,
    within,
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
 * A loop's read carries the context the loop was started in (its `trace`
 * hint): it is a poll, linked to that operation, unless it is asked for
 * inside another operation (a new watcher of a live loop), whose child it is.
 */
export function traceScheduler(scheduler: RequestScheduler, now: () => number): RequestScheduler {
  return {
    ...scheduler,
    run(keyHash, send, hints) {
      const queuedAt = now();
      const caller = context.active();
      const started = hints?.trace as Context | undefined;
      let sends = 0;
      // A loop's read (it carries the context the loop was started in) is a root linked to that operation,
      // unless another operation asks for it as it runs (a new watcher of a live loop): then it is that one's.
      if (started !== undefined && (hints?.priority === 'poll' || caller === ROOT_CONTEXT)) {
        const poll = { origin: trace.getSpanContext(started) };
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
