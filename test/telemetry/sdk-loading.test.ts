import { describe, expect, it } from 'vitest';
import { startOtlpReceiver } from '../helpers/otlp-receiver.ts';
import { spawnEntry } from '../helpers/spawn.ts';
import { freePort } from '../helpers/stack.ts';

/** Starts the gateway as `npm start` would, with the probe that names the OpenTelemetry packages it loaded; stops it. */
async function packagesLoaded(env: Record<string, string>): Promise<string[]> {
  const gateway = spawnEntry(
    'src/main.ts',
    [],
    { PORT: String(await freePort()), HOST: '127.0.0.1', ...env },
    {
      nodeArgs: ['--import', './test/fixtures/loaded-otel-packages.mjs'],
    },
  );
  // Liveness only: a busy machine can take a while to start a process through tsx.
  await gateway.waitFor(/task-gateway listening|GraphiQL at/, 45_000);
  expect(await gateway.stop()).toBe(0);
  const [, list] = (await gateway.waitFor(/opentelemetry packages loaded: (\[.*\])/))!;
  return JSON.parse(list!) as string[];
}

describe('the OpenTelemetry SDK is loaded only when an OTLP endpoint is set', () => {
  it('loads nothing but the API (a no-op until an SDK registers) without an endpoint', { timeout: 60_000 }, async () => {
    expect(await packagesLoaded({})).toEqual(['@opentelemetry/api']);
  });

  it('loads the SDK and its exporter with one', { timeout: 60_000 }, async () => {
    const receiver = await startOtlpReceiver();
    const loaded = await packagesLoaded({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url });
    expect(loaded).toEqual(expect.arrayContaining(['@opentelemetry/sdk-node', '@opentelemetry/exporter-trace-otlp-proto']));
  });
});
