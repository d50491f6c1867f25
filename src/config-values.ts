import { isHttpUrl } from './lib/http-url.ts';

/**
 * Parsers of single environment values, for `src/config.ts`: each reads the
 * `env` object it is given (never `process.env`) and throws `ConfigError`
 * with one line naming the variable.
 */
export type Env = Record<string, string | undefined>;

/** A bad value: its message is one line that names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A comma-separated list of non-empty entries. */
export function list(env: Env, name: string): string[] {
  return (text(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/** The trimmed value, or null when unset or blank. */
export function text(env: Env, name: string): string | null {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? null : value;
}

/** A whole number from `min` to `max`; `fallback` when unset. */
export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = text(env, name);
  if (value === null) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}; got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

/** A whole number from `min` to `max`, or null (off) when unset. */
export function optionalInteger(env: Env, name: string, min: number, max: number): number | null {
  return text(env, name) === null ? null : integer(env, name, 0, min, max);
}

/** A number above 0 (decimals allowed), or null (off) when unset. */
export function optionalNumber(env: Env, name: string, max: number): number | null {
  const value = text(env, name);
  if (value === null) return null;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) <= 0 || Number(value) > max) {
    throw new ConfigError(`${name} must be a number above 0 (quota units); got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

/** A positive decimal number (requests per second), or null when unset. */
export function rate(env: Env, name: string, min: number, max: number): number | null {
  const value = text(env, name);
  if (value === null) return null;
  if (!/^\d+(\.\d+)?$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a number of requests per second from ${min} to ${max}; got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

/** An absolute URL with one of `protocols`, or null when unset; the value is never echoed in the error. */
export function url(env: Env, name: string, protocols = ['http:', 'https:']): string | null {
  const value = text(env, name);
  if (value === null) return null;
  // The value itself is never echoed: a URL may carry a password.
  if (!isHttpUrl(value, protocols)) throw new ConfigError(`${name} must be an absolute URL using ${protocols.join(' or ')}.`);
  return value;
}
