import { type Config, ConfigError, readConfig } from './config.ts';
import { createEmulator } from './emulator/emulator.ts';
import { createGateway } from './gateway.ts';
import { loadTrustedDocuments, type TrustedDocuments } from './graphql/persisted-operations.ts';
import { createLogger } from './logger.ts';

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

const logger = createLogger(config.logLevel);
const emulator = config.upstreamUrl === null ? createEmulator() : null;
const upstreamUrl = config.upstreamUrl ?? (await emulator!.start(0, '127.0.0.1'));
const gateway = createGateway({ config, upstreamUrl, logger, trustedDocuments });
const url = await gateway.start();
logger.info({ graphiql: `${url}/graphql`, emulator: emulator !== null }, `GraphiQL at ${url}/graphql`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  const force = setTimeout(() => {
    logger.error('shutdown deadline passed, exiting');
    process.exit(1);
  }, SHUTDOWN_DEADLINE_MS).unref();
  await gateway.stop();
  await emulator?.stop();
  clearTimeout(force);
  process.exit(0);
}
process.once('SIGINT', () => void shutdown('SIGINT'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.on('unhandledRejection', (reason) => logger.error({ err: reason }, 'unhandled rejection'));
