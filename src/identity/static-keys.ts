import { createPublicKey, type KeyObject } from 'node:crypto';
import { ASYMMETRIC_ALGORITHMS, type KeySource } from './remote-key-set.ts';

const ready = async () => ({ ready: true, detail: 'ok' });

/** One PEM public key or certificate (`AUTH_PUBLIC_KEY`): only the algorithms of its key type are accepted. */
export function createPemKeySource(pem: string): KeySource {
  const key = createPublicKey(pem);
  return { getKey: async () => key, algorithms: algorithmsOf(key), generation: () => 0, status: ready };
}

/** A shared secret (`AUTH_HS256_SECRET`): HS256 only, so no token signed with a public key's bytes as the secret gets in through another route. */
export function createSecretKeySource(secret: string): KeySource {
  const key = new TextEncoder().encode(secret);
  return { getKey: async () => key, algorithms: ['HS256'], generation: () => 0, status: ready };
}

/** The signature algorithms that fit a public key: RSA with RS and PS, each EC curve with its one ES*, Ed25519 with EdDSA. */
export function algorithmsOf(key: KeyObject): readonly string[] {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return ASYMMETRIC_ALGORITHMS.filter((alg) => /^(RS|PS)/.test(alg));
  if (type === 'rsa-pss') return ASYMMETRIC_ALGORITHMS.filter((alg) => alg.startsWith('PS'));
  if (type === 'ed25519') return ['EdDSA', 'Ed25519'];
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const alg = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }[curve ?? ''];
    if (alg) return [alg];
  }
  throw new Error(`AUTH_PUBLIC_KEY: unsupported key type ${type ?? 'unknown'}`);
}
