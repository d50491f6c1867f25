import type { ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { GatewayContext } from '../graphql/context.ts';
import { gatewayError } from '../graphql/errors.ts';
import type { Authenticator } from './authenticator.ts';

/**
 * Ends SSE and multipart subscriptions when their token stops being accepted
 * (its `exp` plus the clock tolerance that admitted it): the stream's last
 * event is an `UNAUTHENTICATED` error (`extensions.reason` `EXPIRED`), then it
 * completes and the subscription stops. WebSockets close with 4403 instead
 * (src/http/websocket-server.ts), which graphql-ws clients answer with a fresh token.
 */
export function useSubscriptionExpiry(authenticator: Pick<Authenticator, 'atExpiry'>): Plugin<GatewayContext> {
  return {
    onSubscribe({ args }) {
      const { user } = args.contextValue as GatewayContext;
      if (!user) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (Symbol.asyncIterator in result) setResult(endAtExpiry(result, (onExpired) => authenticator.atExpiry(user, onExpired)));
        },
      };
    },
  };
}

/** `source`, ended by an `UNAUTHENTICATED` event once `atExpiry` fires; the source is returned (stopped) then. */
export function endAtExpiry(
  source: AsyncIterable<ExecutionResult>,
  atExpiry: (onExpired: () => void) => () => void,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  let expired = false;
  let wake: () => void = () => undefined;
  const expiry = new Promise<'expired'>((resolve) => {
    wake = () => resolve('expired');
  });
  const cancel = atExpiry(() => {
    expired = true;
    wake();
  });
  const finish = () => {
    done = true;
    cancel();
    return iterator.return?.();
  };
  const expiredEvent = (): IteratorResult<ExecutionResult> => {
    void finish();
    return {
      done: false,
      value: {
        errors: [gatewayError('UNAUTHENTICATED', 'The token expired: reconnect with a fresh one.', { extensions: { reason: 'EXPIRED' } })],
      },
    };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (done) return { done: true, value: undefined };
      if (expired) return expiredEvent();
      const step = await Promise.race([iterator.next(), expiry]);
      if (step === 'expired') return expiredEvent();
      if (step.done) {
        done = true;
        cancel();
      }
      return step;
    },
    async return() {
      if (!done) await finish();
      return { done: true, value: undefined };
    },
    async throw(error) {
      if (!done) await finish();
      throw error;
    },
  };
}
