import { sha256 } from '../lib/sha256.ts';

/** A signed-in end user (AUTH_MODE=jwt). */
export interface EndUser {
  /** The user's id, from the token's user claim: answered by `viewer.id`; never logged or stored in clear. */
  readonly id: string;
  /** sha-256 (hex) of issuer + "\n" + user id: how tasks, limits and records refer to a user. */
  readonly ownerHash: string;
  /** When the token stops being accepted (its `exp` plus the clock tolerance), ms since the epoch; undefined without `exp`. */
  readonly expiresAtMs: number | undefined;
}

/** The hash that names a user wherever the gateway keeps or shares something about them: sha-256 hex of `issuer + "\n" + userId`. */
export function ownerHashOf(issuer: string, userId: string): string {
  return sha256(`${issuer}\n${userId}`);
}

/** An `EndUser` whose id stays out of `JSON.stringify` and `util.inspect` (so out of log lines and error serialisations). */
export function createEndUser(issuer: string, id: string, expiresAtMs: number | undefined): EndUser {
  const ownerHash = ownerHashOf(issuer, id);
  const user = { id, ownerHash, expiresAtMs };
  Object.defineProperties(user, {
    id: { enumerable: false },
    toJSON: { value: () => ({ ownerHash, expiresAtMs }), enumerable: false },
    [Symbol.for('nodejs.util.inspect.custom')]: { value: () => `EndUser(${ownerHash.slice(0, 12)})`, enumerable: false },
  });
  return Object.freeze(user);
}
