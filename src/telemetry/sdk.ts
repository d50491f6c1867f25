import { NodeSDK } from '@opentelemetry/sdk-node';
import type { TracingSettings } from '../config.ts';
import { SyncContextManager } from './sync-context.ts';

export interface TracingSdk {
  /** Exports what is still buffered, then stops; never rejects. */
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry's Node SDK for traces only, configured by the standard
 * variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_PROTOCOL`,
 * `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, ...). Metrics stay on `/metrics` and logs
 * on stdout, so the SDK's own metric and log exporters are off. This module is
 * imported only when an endpoint is configured: without one, nothing of the SDK
 * is loaded. The context manager is synchronous (`sync-context.ts`): no
 * `AsyncLocalStorage`, no hook on every promise.
 */
export function startTracingSdk(settings: TracingSettings): TracingSdk {
  const sdk = new NodeSDK({
    serviceName: settings.serviceName,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
    contextManager: new SyncContextManager(),
  });
  sdk.start();
  return {
    shutdown: () => sdk.shutdown().catch(() => undefined),
  };
}
