import { errors, type JWTPayload, jwtVerify } from 'jose';
import { createLruMap } from '../lib/lru-map.ts';
import { createEndUser, type EndUser } from './end-user.ts';
import type { KeySource } from './remote-key-set.ts';
import { TokenRefusedError } from './token-refused-error.ts';

export interface TokenVerifierOptions {
  /** The `iss` every token must carry (`AUTH_ISSUER`). */
  issuer: string;
  /** A token's `aud` must name one of these (`AUTH_AUDIENCE`). */
  audience: readonly string[];
  /** Where signatures are checked from. */
  keys: KeySource;
  /** Leeway on `exp` and `nbf`, in seconds (`AUTH_CLOCK_TOLERANCE_S`). Default 60. */
  clockToleranceS?: number;
  /** The claim naming the user; a dotted path reaches nested claims (`AUTH_USER_CLAIM`). Default `sub`. */
  userClaim?: string;
  /** Clock in ms. Default `Date.now`. */
  now?: () => number;
  /** Verified tokens remembered (by their text, until they expire), so a hot client costs a lookup, not a signature check. Default 10 000. */
  maxCachedTokens?: number;
  /** Longest token accepted, in characters. Default 8 192. */
  maxTokenLength?: number;
}

/** Checks tokens and names their users. */
export interface TokenVerifier {
  /** The token's user; rejects with `TokenRefusedError` saying why not. */
  verify(token: string): Promise<EndUser>;
  /** Synchronously, the user of a token `verify` accepted and would accept again now without checking its signature; else null. */
  known(token: string): EndUser | null;
  /** Verified tokens currently remembered. */
  cached(): number;
}

/** Three base64url parts: what a compact JWS looks like (anything else, an upstream key included, is not a token). */
const compactJws = /^[\w-]+\.[\w-]+\.[\w-]*$/;
/** Longest user id accepted from a claim. */
const MAX_USER_ID_LENGTH = 256;

/**
 * Verifies end users' tokens with `jose` (`jwtVerify`: signature with the key
 * source's algorithms only, issuer, audience, clock tolerance, `exp` required)
 * and reads the user claim. Verified tokens are cached by their text until
 * they stop being accepted, bounded in entries and bytes; a change of keys
 * (rotation, a revoked key) empties it.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const {
    issuer,
    audience,
    keys,
    clockToleranceS = 60, // 60 s
    userClaim = 'sub',
    now = Date.now,
    maxCachedTokens = 10_000,
    maxTokenLength = 8_192,
  } = options;
  // Bounded in bytes too: a token may be up to `maxTokenLength` characters, most are about 1 KiB.
  const verified = createLruMap<string, { user: EndUser; generation: number; bytes: number }>({
    maxEntries: maxCachedTokens,
    maxBytes: maxCachedTokens * 2_048,
    sizeOf: (entry) => entry.bytes,
  });
  const verifyOptions = {
    issuer,
    audience: [...audience],
    algorithms: [...keys.algorithms],
    clockTolerance: clockToleranceS,
    requiredClaims: ['exp'],
  };

  /** The user of a token verified before, still accepted with the same keys; null otherwise. */
  function known(token: string): EndUser | null {
    const hit = verified.peek(token);
    if (!hit) return null;
    if (hit.generation === keys.generation() && (hit.user.expiresAtMs ?? Number.POSITIVE_INFINITY) > now()) return hit.user;
    verified.delete(token);
    return null;
  }

  async function verify(token: string): Promise<EndUser> {
    const hit = known(token);
    if (hit) return hit;
    if (token.length > maxTokenLength) {
      throw new TokenRefusedError('MALFORMED', `The token is longer than ${maxTokenLength} characters.`);
    }
    if (!compactJws.test(token)) {
      throw new TokenRefusedError('MALFORMED', 'The bearer token is not a JWT: sign in with the identity provider and send its token.');
    }
    const generation = keys.generation();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys.getKey, { ...verifyOptions, currentDate: new Date(now()) }));
    } catch (error) {
      throw refusal(error);
    }
    const id = userOf(payload);
    const user = createEndUser(issuer, id, (payload.exp as number) * 1000 + clockToleranceS * 1000);
    // A token verified with keys that changed meanwhile is not remembered: the next use checks it again.
    if (generation === keys.generation()) verified.set(token, { user, generation, bytes: token.length + id.length + 200 });
    return user;
  }

  function userOf(payload: JWTPayload): string {
    let value: unknown = Object.hasOwn(payload, userClaim) ? payload[userClaim] : undefined;
    if (value === undefined && userClaim.includes('.')) {
      value = userClaim
        .split('.')
        .reduce<unknown>((node, part) => (isRecord(node) && Object.hasOwn(node, part) ? node[part] : undefined), payload);
    }
    if (typeof value === 'number' && Number.isSafeInteger(value)) value = String(value);
    if (typeof value !== 'string' || value === '' || value.length > MAX_USER_ID_LENGTH) {
      throw new TokenRefusedError(
        'MISSING_CLAIM',
        `The token has no "${userClaim}" claim naming the user (a string of 1 to ${MAX_USER_ID_LENGTH} characters; AUTH_USER_CLAIM).`,
      );
    }
    return value;
  }

  function refusal(error: unknown): Error {
    if (error instanceof TokenRefusedError) return error;
    if (error instanceof errors.JWTExpired) {
      const exp = typeof error.payload.exp === 'number' ? ` at ${new Date(error.payload.exp * 1000).toISOString()}` : '';
      return new TokenRefusedError('EXPIRED', `The token expired${exp}: get a fresh one from the identity provider.`);
    }
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === 'nbf') {
        return new TokenRefusedError(
          'NOT_YET_VALID',
          'The token is not valid yet (nbf): check the clocks of the identity provider and this server.',
        );
      }
      if (error.claim === 'iss') {
        return new TokenRefusedError('WRONG_ISSUER', `The token's issuer is not ${JSON.stringify(issuer)} (AUTH_ISSUER).`);
      }
      if (error.claim === 'aud') {
        return new TokenRefusedError(
          'WRONG_AUDIENCE',
          `The token's audience is not ${audience.map((aud) => JSON.stringify(aud)).join(' or ')} (AUTH_AUDIENCE).`,
        );
      }
      if (error.reason === 'missing') return new TokenRefusedError('MISSING_CLAIM', `The token has no "${error.claim}" claim.`);
      return new TokenRefusedError('MALFORMED', `The token's "${error.claim}" claim is invalid.`);
    }
    if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
      return new TokenRefusedError(
        'ALGORITHM_NOT_ALLOWED',
        `The token's algorithm is not accepted here: only ${keys.algorithms.join(', ')}.`,
      );
    }
    if (error instanceof errors.JWKSNoMatchingKey) {
      return new TokenRefusedError('UNKNOWN_KEY', "The token's key (kid) is not among the identity provider's published keys.");
    }
    if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSMultipleMatchingKeys) {
      return new TokenRefusedError('BAD_SIGNATURE', "The token's signature does not verify.");
    }
    return new TokenRefusedError('MALFORMED', 'The bearer token is not a valid JWT.');
  }

  return { verify, known, cached: () => verified.size };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
