import type { ExecutionResult } from 'graphql';
import type { WebSocket } from 'ws';

/** What a pre-serialised payload stands in for inside the message graphql-ws stringifies. */
const PLACEHOLDER = '\u0000payload';
/** How every `next` message carrying a stand-in ends, once stringified. */
const TAIL = `"payload":${JSON.stringify(PLACEHOLDER)}}`;

/**
 * Serialises each `next` payload once, however many watchers receive it.
 *
 * The executor hands every subscriber of the same (change, operation,
 * variables) the same result object. graphql-ws would stringify it once per
 * watcher; instead its `onNext` hook answers a stand-in whose JSON is computed
 * once per result object, and the socket's `send` splices those bytes into the
 * message, whose own stringify then costs only its id and type. graphql-ws
 * still owns the protocol (acks, errors, completion); this only changes how the
 * same bytes are produced.
 *
 * graphql-ws stringifies a message and hands it to `send` in one synchronous
 * step, so the payload being sent is always the one stringified last.
 */
export interface PayloadSplicer {
  /** For graphql-ws's `onNext`: a stand-in for `result`, serialised at most once per result object. */
  payloadOf(result: ExecutionResult): object;
  /** Makes `socket.send` splice the serialised payload into messages that carry a stand-in. */
  wrap(socket: WebSocket): void;
}

export function createPayloadSplicer(): PayloadSplicer {
  const serialized = new WeakMap<ExecutionResult, object>();
  let pending: string | null = null;
  return {
    payloadOf(result) {
      let standIn = serialized.get(result);
      if (!standIn) {
        const json = JSON.stringify(result);
        standIn = {
          toJSON() {
            pending = json;
            return PLACEHOLDER;
          },
        };
        serialized.set(result, standIn);
      }
      return standIn;
    },
    wrap(socket) {
      const send = socket.send.bind(socket) as (data: unknown, ...rest: unknown[]) => void;
      const stream = (socket as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
      let corked = false;
      const uncork = () => {
        corked = false;
        stream?.uncork();
      };
      socket.send = ((data: unknown, ...rest: unknown[]) => {
        if (pending !== null && typeof data === 'string' && data.endsWith(TAIL)) {
          data = `${data.slice(0, -TAIL.length)}"payload":${pending}}`;
          pending = null;
        }
        // One change reaches all of a socket's watchers in one turn of the event loop: their messages
        // leave in one write when that turn's promise jobs are done, not one write each.
        if (!corked && stream) {
          corked = true;
          stream.cork();
          process.nextTick(uncork);
        }
        send(data, ...rest);
      }) as WebSocket['send'];
    },
  };
}
