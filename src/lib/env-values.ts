import { isHttpUrl } from './http-url.ts';

/** The environment, as `readConfig` is given it. */
export type Env = Record<string, string | undefined>;

/** A bad value: its message is one line that names the variable. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** The trimmed value of `name`, or null when unset or blank. */
export function text(env: Env, name: string): string | null {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? null : value;
}

/** A whole number from `min` to `max`, `fallback` when unset; anything else is a `ConfigError` naming `name`. */
export function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = text(env, name);
  if (value === null) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}; got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

/** An absolute URL with one of `protocols`, or null when unset. */
export function url(env: Env, name: string, protocols = ['http:', 'https:']): string | null {
  const value = text(env, name);
  if (value === null) return null;
  // The value itself is never echoed: a URL may carry a password.
  if (!isHttpUrl(value, protocols)) throw new ConfigError(`${name} must be an absolute URL using ${protocols.join(' or ')}.`);
  return value;
}

/** A comma-separated list of non-empty entries (empty when unset). */
export function list(env: Env, name: string): string[] {
  return (text(env, name) ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}
