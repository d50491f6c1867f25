import { sha256 } from '../lib/sha256.ts';
import { UnauthenticatedError } from './errors.ts';

/**
 * An upstream API key and its hash. Everything the gateway shares or caches is
 * keyed by `hash`; `apiKey` is only ever put in the `Authorization` header of
 * an upstream request. `toJSON` and `inspect` hide the key so that a stray log
 * line or error serialisation cannot print it.
 */
export interface Credential {
  readonly apiKey: string;
  /** sha-256 of the key, hex: safe to use as a map key, in Redis or in logs. */
  readonly hash: string;
}

/** The longest API key accepted. */
const MAX_KEY_LENGTH = 512;
/** Visible ASCII, no spaces: what a bearer token may be. */
const keyPattern = /^[\x21-\x7e]+$/;

/**
 * The key in a private field, read through a getter on the prototype: not an
 * own property, so no spread, `Object.keys`, `JSON.stringify` or `inspect`
 * shows it, and nothing is defined per instance (a request in key mode makes
 * one: per-instance `defineProperties` and `freeze` cost about as much as
 * the rest of a cached `task(id)` answer).
 */
class KeyCredential implements Credential {
  readonly #apiKey: string;
  readonly hash: string;
  constructor(apiKey: string) {
    this.#apiKey = apiKey;
    this.hash = sha256(apiKey);
  }
  get apiKey(): string {
    return this.#apiKey;
  }
  toJSON() {
    return { hash: this.hash };
  }
  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `Credential(${this.hash.slice(0, 12)})`;
  }
}

/** Wraps an API key, refusing one that no upstream could accept. */
export function createCredential(apiKey: string): Credential {
  if (apiKey.length === 0 || apiKey.length > MAX_KEY_LENGTH || !keyPattern.test(apiKey)) {
    throw new UnauthenticatedError('The API key is malformed.');
  }
  return new KeyCredential(apiKey);
}

/**
 * Reads `Bearer <key>` (case-insensitive scheme) and returns the credential.
 * `fallback` (the default key) serves only a request that carries no credential
 * at all (`header` null or undefined); a header that is present but not a
 * well-formed bearer key, blank included, throws `UnauthenticatedError`.
 */
export function credentialFromAuthorization(header: string | null | undefined, fallback: Credential | null): Credential {
  if (header === null || header === undefined) {
    if (fallback) return fallback;
    throw new UnauthenticatedError('No API key: send "Authorization: Bearer <key>".');
  }
  const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw new UnauthenticatedError('The Authorization header must be "Bearer <key>".');
  return createCredential(match[1]!);
}

/**
 * The credential of a WebSocket connection, from `connectionParams`: its
 * `authorization` entry, or `headers.authorization` (as Apollo's and urql's
 * examples send it), names matched case-insensitively and trimmed (GraphiQL
 * sends `Authorization`). No such entry: `fallback`. Anything else than one
 * string in `Bearer <key>` form (an object, an empty string, two spellings, a
 * `token` or `authToken` instead) throws `UnauthenticatedError`: a credential
 * that is present is never replaced by the default.
 */
export function credentialFromConnectionParams(
  params: Readonly<Record<string, unknown>> | null | undefined,
  fallback: Credential | null,
): Credential {
  const value = authorizationFromConnectionParams(params);
  return value === null ? credentialFromAuthorization(null, fallback) : credentialFromAuthorization(value, null);
}

/**
 * The `Authorization` value a WebSocket connection brought in `connectionParams` (see
 * `credentialFromConnectionParams` for where it is looked for); null when none. Throws
 * `UnauthenticatedError` for anything but one string, or a credential under another name.
 */
export function authorizationFromConnectionParams(params: Readonly<Record<string, unknown>> | null | undefined): string | null {
  const named = (record: unknown, names: readonly string[]) =>
    typeof record === 'object' && record !== null
      ? Object.entries(record).filter(([name]) => names.includes(name.trim().toLowerCase()))
      : [];
  const headers = named(params, ['headers']).flatMap(([, value]) => named(value, ['authorization']));
  const values = [...named(params, ['authorization']), ...headers].map(([, value]) => value);
  if (values.length === 0) {
    if (named(params, ['token', 'authtoken', 'apikey', 'api_key']).length > 0) {
      throw new UnauthenticatedError('Send the key as connectionParams.authorization, "Bearer <key>".');
    }
    return null;
  }
  const [value] = values;
  if (values.length > 1 || typeof value !== 'string') {
    throw new UnauthenticatedError('connectionParams.authorization must be one string, "Bearer <key>".');
  }
  return value;
}
