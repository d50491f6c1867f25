import { describe, expect, it } from 'vitest';
import { createManualClock } from '../helpers/clock.ts';
import { startIdentityProvider } from '../helpers/identity-provider.ts';
import { firstOutcome, refusalOf, TRANSPORTS } from '../helpers/jwt-transports.ts';
import { startStack } from '../helpers/stack.ts';

const QUERY = `{ task(id: "task_absent") { __typename } }`;
const WATCH = `subscription { taskUpdated(id: "task_absent") { __typename } }`;

/** A gateway trusting a fresh stand-in identity provider, both on one manual clock. */
async function setUp(options: { downAtStart?: boolean } = {}) {
  const clock = createManualClock();
  const idp = await startIdentityProvider({ now: clock.now });
  if (options.downAtStart) idp.setDown(true);
  const stack = await startStack({ env: { ...idp.env, UPSTREAM_API_KEY: 'sk-server' }, emulator: { now: clock.now }, now: clock.now });
  /** The refusal of `token` over HTTP, or null when accepted (`task` answered null: the task does not exist). */
  const refusal = async (token: string, transport: (typeof TRANSPORTS)[number] = 'http') => {
    const outcome = await firstOutcome(stack.gatewayUrl, transport, transport === 'http' ? QUERY : WATCH, {}, `Bearer ${token}`);
    const refused = refusalOf(outcome);
    if (!refused) expect(outcome.result?.errors?.[0]?.extensions?.code ?? 'accepted').toMatch(/accepted|NOT_FOUND/);
    return refused;
  };
  const readyz = async () => {
    const response = await fetch(`${stack.gatewayUrl}/readyz`);
    return { status: response.status, body: (await response.json()) as Record<string, string> };
  };
  return { clock, idp, stack, refusal, readyz };
}

describe('the identity provider key set', () => {
  it('accepts a token signed with a newly published key (rotation), with one more fetch', async () => {
    const { clock, idp, refusal } = await setUp();
    expect(await refusal(await idp.sign())).toBeNull();
    // Keys are fetched for an unknown kid at most once per cooldown (30 s) since the last fetch.
    clock.advance(30_000);
    const oldKeyToken = await idp.sign({ sub: 'before-rotation' });
    const before = idp.fetches();
    await idp.rotate();
    expect(await refusal(await idp.sign({ sub: 'after-rotation' }))).toBeNull();
    expect(idp.fetches()).toBe(before + 1);
    // The old key is still published: its tokens still work, with no fetch.
    expect(await refusal(oldKeyToken)).toBeNull();
    expect(idp.fetches()).toBe(before + 1);
  });

  it('stops accepting a token it had verified once its key is no longer published (a revoked key)', async () => {
    const { clock, idp, refusal } = await setUp();
    const revokedKid = idp.kid();
    expect(await refusal(await idp.sign({ sub: 'first' }))).toBeNull();
    const early = await idp.sign({ sub: 'early' });
    // Verified with keys that no longer change under it: remembered.
    expect(await refusal(early)).toBeNull();
    await idp.rotate();
    idp.unpublish(revokedKid);
    clock.advance(30_000);
    // A token with the new key brings the new key set; the one remembered from the old key is checked again.
    expect(await refusal(await idp.sign({ sub: 'late' }))).toBeNull();
    expect(await refusal(early)).toMatchObject({ reason: 'UNKNOWN_KEY' });
  });

  it('costs at most one key-set fetch per cooldown for a storm of unknown kids, over every transport', async () => {
    const { clock, idp, refusal } = await setUp();
    expect(await refusal(await idp.sign())).toBeNull();
    const before = idp.fetches();
    const storm = await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const token = await idp.sign({}, { header: { kid: `made-up-${index}` } });
        return refusal(token, TRANSPORTS[index % TRANSPORTS.length]);
      }),
    );
    expect(storm.every((refused) => refused?.reason === 'UNKNOWN_KEY')).toBe(true);
    expect(idp.fetches() - before).toBeLessThanOrEqual(1);
    // After the cooldown (30 s) an unknown kid may ask once more; a key published meanwhile is then found.
    clock.advance(30_000);
    await idp.rotate();
    expect(await refusal(await idp.sign({ sub: 'new-key' }))).toBeNull();
    expect(idp.fetches() - before).toBeLessThanOrEqual(2);
  });

  it('keeps accepting tokens whose key is cached while the provider is down; others are told the keys could not be fetched', async () => {
    const { clock, idp, refusal, readyz } = await setUp();
    expect(await refusal(await idp.sign())).toBeNull();
    const cachedKeyTokens = await Promise.all(TRANSPORTS.map((transport) => idp.sign({ sub: `cached-${transport}` })));
    idp.setDown(true);
    await idp.rotate();
    // Past the set's 10 min age: the background refresh fails, the last good set stays.
    clock.advance(11 * 60_000);
    for (const [index, transport] of TRANSPORTS.entries()) expect(await refusal(cachedKeyTokens[index]!, transport)).toBeNull();
    clock.advance(30_000);
    for (const transport of TRANSPORTS) {
      clock.advance(30_000);
      expect(await refusal(await idp.sign({ sub: `new-${transport}` }), transport)).toMatchObject({ reason: 'KEYS_UNREACHABLE' });
    }
    expect((await refusal(await idp.sign()))?.message).toMatch(/keys could not be fetched/);
    const ready = await readyz();
    expect(ready.status).toBe(200);
    expect(ready.body.identity).toMatch(/^unreachable: using the keys fetched \d+ s ago$/);
    // The provider back: the next refresh (after the cooldown) brings the new key.
    idp.setDown(false);
    clock.advance(30_000);
    expect(await refusal(await idp.sign({ sub: 'recovered' }))).toBeNull();
    expect((await readyz()).body.identity).toBe('ok');
  });

  it('reports not ready, and refuses every token saying why, when no key set could ever be fetched', async () => {
    const { idp, refusal, readyz } = await setUp({ downAtStart: true });
    const ready = await readyz();
    expect(ready).toEqual({
      status: 503,
      body: expect.objectContaining({ status: 'identity provider keys unreachable', identity: 'unreachable' }),
    });
    expect(await refusal(await idp.sign())).toMatchObject({ reason: 'KEYS_UNREACHABLE' });
  });
});
