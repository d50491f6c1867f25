import { UnauthenticatedError } from '../upstream/errors.ts';

/** Why a token was refused: `extensions.reason` beside `UNAUTHENTICATED`, for code that reacts to it. */
export const tokenRefusals = {
  NO_TOKEN: 'no Authorization header (or connectionParams.authorization)',
  MALFORMED: 'not a JWT (an upstream API key included), or not "Bearer <JWT>"',
  EXPIRED: 'past its exp (plus AUTH_CLOCK_TOLERANCE_S); also how subscriptions end when their token expires',
  NOT_YET_VALID: 'before its nbf (minus the tolerance)',
  WRONG_ISSUER: 'iss is not AUTH_ISSUER',
  WRONG_AUDIENCE: 'aud names none of AUTH_AUDIENCE',
  UNKNOWN_KEY: "kid is in none of the identity provider's published keys",
  BAD_SIGNATURE: 'the signature does not verify with the key (tampered, or signed by another key)',
  ALGORITHM_NOT_ALLOWED: 'alg is none, or does not fit the key type (HMAC with a public key, or the reverse)',
  MISSING_CLAIM: 'no exp, or no AUTH_USER_CLAIM naming the user',
  KEYS_UNREACHABLE: "the identity provider's keys could not be fetched (and this token's key is not cached)",
} as const;

export type TokenRefusal = keyof typeof tokenRefusals;

/** A refused token: `UNAUTHENTICATED` with a message a developer can act on. Never carries the token. */
export class TokenRefusedError extends UnauthenticatedError {
  constructor(
    readonly reason: TokenRefusal,
    message: string,
  ) {
    super(message);
  }
}
