import { trace } from '@opentelemetry/api';
import { type Config, ConfigError, readConfig } from './config.ts';
import { createEmulator } from './emulator/emulator.ts';
import { createGateway } from './gateway.ts';
import { loadTrustedDocuments, type TrustedDocuments } from './graphql/persisted-operations.ts';
import { createLogSink } from './log-sink.ts';
import { createLogger } from './logger.ts';
import { traceIdsOfActiveSpan } from './telemetry/log-context.ts';

/** The entry point: the only place that reads the environment, listens and handles signals. */
let config: Config;
try {
  config = readConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`task-gateway: ${error.message}`);
  process.exit(1);
}

let trustedDocuments: TrustedDocuments | null = null;
try {
  trustedDocuments = config.trustedDocuments === null ? null : loadTrustedDocuments(config.trustedDocuments);
} catch (error) {
  console.error(`task-gateway: ${(error as Error).message}`);
  process.exit(1);
}

/** How long a shutdown may take before the process exits anyway. */
const SHUTDOWN_DEADLINE_MS = 10_000;

// Logging never blocks: lines stdout cannot take are dropped and counted, so a stuck log reader cannot hang the process.
const logSink = createLogSink();
// Tracing only when an OTLP endpoint is set: the SDK is imported then, never otherwise.
const tracing = config.tracing === null ? null : (await import('./telemetry/sdk.ts')).startTracingSdk(config.tracing);
const logger = createLogger(config.logLevel, logSink, { mixin: tracing ? traceIdsOfActiveSpan : undefined });
const emulator = config.upstreamUrl === null ? createEmulator() : null;
const upstreamUrl = config.upstreamUrl ?? (await emulator!.start(0, '127.0.0.1'));
const gateway = createGateway({
  config,
  upstreamUrl,
  logger,
  trustedDocuments,
  droppedLogLines: logSink.dropped,
  tracer: tracing ? trace.getTracer('task-gateway') : undefined,
});
const url = await gateway.start();
if (config.graphiql) logger.info({ graphiql: `${url}/graphql`, emulator: emulator !== null }, `GraphiQL at ${url}/graphql`);
else logger.info({ url: `${url}/graphql`, emulator: emulator !== null }, `GraphQL at ${url}/graphql (GraphiQL off)`);

/** Signals received so far: the first stops the gateway, the next ones are logged, the third forces the exit. */
let signals = 0;
function exit(code: number): never {
  logSink.flush();
  process.exit(code);
}
async function shutdown(signal: string): Promise<void> {
  signals += 1;
  if (signals > 1) {
    // Supervisors and terminals repeat signals; a second one must not cut the clean stop short.
    logger.warn({ signal, signals }, signals >= 3 ? 'third signal: exiting now' : 'already shutting down; a third signal forces the exit');
    if (signals >= 3) exit(1);
    return;
  }
  logger.info({ signal }, 'shutting down');
  setTimeout(() => {
    logger.error('shutdown deadline passed, exiting');
    exit(1);
  }, SHUTDOWN_DEADLINE_MS).unref();
  await gateway.stop();
  await emulator?.stop();
  // The last spans (the shutdown's own operations) are exported before the exit.
  await tracing?.shutdown();
  exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
