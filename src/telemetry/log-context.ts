import { context, isSpanContextValid, trace } from '@opentelemetry/api';

/**
 * A pino `mixin`: every log line written while a span is active carries its
 * `trace_id` and `span_id` (the names OpenTelemetry's log data model uses), so
 * a line can be found from a trace and a trace from a line.
 */
export function traceIdsOfActiveSpan(): Record<string, string> {
  const spanContext = trace.getSpanContext(context.active());
  if (!spanContext || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
