import { type Config, ConfigError, readConfig } from './config.ts';
import { createEmulator } from './emulator/emulator.ts';
import { createGateway } from './server.ts';

/** The entry point: the only place that reads the environment, listens and handles signals. */
let config: Config;
try {
  config = readConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`task-gateway: ${error.message}`);
  process.exit(1);
}

const emulator = config.upstreamUrl === null ? createEmulator() : null;
const upstreamUrl = config.upstreamUrl ?? (await emulator!.start(0, '127.0.0.1'));
const gateway = createGateway({ config, upstreamUrl });
const url = await gateway.start();
console.log(`task-gateway: GraphiQL at ${url}/graphql`);
console.log(
  emulator ? `task-gateway: using the embedded emulator at ${upstreamUrl}` : `task-gateway: upstream ${new URL(upstreamUrl).origin}`,
);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log(`task-gateway: ${signal}, shutting down`);
  const force = setTimeout(() => process.exit(1), 10_000).unref();
  await gateway.stop();
  await emulator?.stop();
  clearTimeout(force);
  process.exit(0);
}
process.once('SIGINT', () => void shutdown('SIGINT'));
process.once('SIGTERM', () => void shutdown('SIGTERM'));
