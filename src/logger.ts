import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.ts';

export type { Logger };

export interface LoggerOptions {
  /** Fields added to every line, read as it is written (the active span's trace ids). Default: none. */
  mixin?: () => Record<string, unknown>;
}

/**
 * Structured JSON logs (pino). Keys never reach them: no code path logs a
 * credential or a header, and these paths are redacted anyway, as a second
 * line of defence.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream, options: LoggerOptions = {}): Logger {
  const { mixin } = options;
  return pino(
    {
      level,
      ...(mixin ? { mixin } : {}),
      base: { service: 'task-gateway' },
      redact: {
        paths: [
          'authorization',
          'apiKey',
          'headers.authorization',
          'req.headers.authorization',
          'connectionParams',
          '*.authorization',
          '*.apiKey',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

/** A request path fit for logs: webhook tokens are secrets too. */
export function loggablePath(url: string): string {
  const path = url.split('?')[0] ?? '/';
  return path.startsWith('/webhooks/tasks/') ? '/webhooks/tasks/[token]' : path.slice(0, 200);
}
