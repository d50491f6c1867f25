/**
 * The benchmark's client side, in its own process so that the gateway's
 * memory and CPU are measured alone. Driven over IPC by bench/run.ts.
 * Speaks graphql-transport-ws by hand on raw `ws` sockets: the cheapest
 * client there is, so the figures are the gateway's; the query is the tests' (test/helpers/ws-client.ts).
 */
import WebSocket from 'ws';
import { WATCH } from '../test/helpers/ws-client.ts';

type Command =
  | { type: 'open'; url: string; sockets: number; key: string | null; protocol: 'graphql-ws' | 'raw' }
  | { type: 'subscribe'; taskId: string; perSocket: number }
  | { type: 'expect'; match: string; count: number }
  | { type: 'hold'; perSocket: number; taskIds: string[] }
  | { type: 'churn'; cycles: number; perSocketPerRound: number }
  | { type: 'release' }
  | { type: 'close' };

let sockets: WebSocket[] = [];
let firstResults = 0;
let wantedFirst = 0;
let onFirst: (() => void) | null = null;
let matching: { match: string; count: number; seen: number; sample: string; firstAt: number } | null = null;
const seenIds = new Set<string>();

/** Soak state: live subscription ids per socket, and ids still waiting for their first answer. */
let active: string[][] = [];
let pending = new Set<string>();
let onSettled: (() => void) | null = null;
let taskIds: string[] = [];
let serial = 0;

function subscribeOne(socketIndex: number): void {
  const id = `soak-${socketIndex}-${serial++}`;
  active[socketIndex]!.push(id);
  pending.add(id);
  const taskId = taskIds[serial % taskIds.length]!;
  sockets[socketIndex]!.send(JSON.stringify({ id, type: 'subscribe', payload: { query: WATCH, variables: { id: taskId } } }));
}

function settled(): Promise<void> {
  if (pending.size === 0) return Promise.resolve();
  return new Promise((resolve) => {
    onSettled = resolve;
  });
}

function noteAnswer(text: string): void {
  if (pending.size === 0 || !text.startsWith('{"id"')) return;
  const id = text.slice(7, text.indexOf('"', 7));
  if (pending.delete(id) && pending.size === 0 && onSettled) {
    const done = onSettled;
    onSettled = null;
    done();
  }
}

const wallClock = () => performance.timeOrigin + performance.now();
const reply = (message: unknown) => process.send!(message);

function onMessage(text: string) {
  noteAnswer(text);
  if (matching && text.includes(matching.match)) {
    matching.seen += 1;
    matching.sample = text;
    if (matching.seen === 1) matching.firstAt = wallClock();
    if (matching.seen === matching.count) {
      const done = matching;
      matching = null;
      reply({ type: 'done', at: wallClock(), firstAt: done.firstAt, sample: done.sample });
    }
  }
  if (onFirst && text.startsWith('{"id"') && text.includes('"type":"next"')) {
    const id = text.slice(7, text.indexOf('"', 7));
    if (!seenIds.has(id)) {
      seenIds.add(id);
      firstResults += 1;
      if (firstResults === wantedFirst) {
        const done = onFirst;
        onFirst = null;
        done();
      }
    }
  }
}

async function open(command: Extract<Command, { type: 'open' }>) {
  sockets = await Promise.all(
    Array.from(
      { length: command.sockets },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const socket = new WebSocket(command.url, command.protocol === 'graphql-ws' ? 'graphql-transport-ws' : undefined);
          socket.on('error', reject);
          socket.on('message', (data) => onMessage(data.toString()));
          socket.on('open', () => {
            if (command.protocol === 'raw') return resolve(socket);
            socket.send(
              JSON.stringify({ type: 'connection_init', payload: command.key ? { authorization: `Bearer ${command.key}` } : {} }),
            );
            socket.once('message', () => resolve(socket));
          });
        }),
    ),
  );
  reply({ type: 'opened' });
}

function subscribe(command: Extract<Command, { type: 'subscribe' }>) {
  firstResults = 0;
  seenIds.clear();
  wantedFirst = sockets.length * command.perSocket;
  onFirst = () => reply({ type: 'ready' });
  sockets.forEach((socket, s) => {
    for (let i = 0; i < command.perSocket; i++) {
      socket.send(JSON.stringify({ id: `${s}-${i}`, type: 'subscribe', payload: { query: WATCH, variables: { id: command.taskId } } }));
    }
  });
}

// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', (command: Command) => {
  switch (command.type) {
    case 'open':
      void open(command);
      break;
    case 'subscribe':
      subscribe(command);
      break;
    case 'expect':
      matching = { match: command.match, count: command.count, seen: 0, sample: '', firstAt: 0 };
      break;
    case 'hold':
      taskIds = command.taskIds;
      active = sockets.map(() => []);
      sockets.forEach((_socket, index) => {
        for (let i = 0; i < command.perSocket; i++) subscribeOne(index);
      });
      void settled().then(() => reply({ type: 'held' }));
      break;
    case 'churn':
      void (async () => {
        let cycles = 0;
        while (cycles < command.cycles) {
          sockets.forEach((socket, index) => {
            for (const id of active[index]!.splice(0, command.perSocketPerRound)) socket.send(JSON.stringify({ id, type: 'complete' }));
            for (let i = 0; i < command.perSocketPerRound; i++) subscribeOne(index);
          });
          cycles += sockets.length * command.perSocketPerRound;
          await settled();
        }
        reply({ type: 'churned', cycles });
      })();
      break;
    case 'release':
      sockets.forEach((socket, index) => {
        for (const id of active[index]!.splice(0)) socket.send(JSON.stringify({ id, type: 'complete' }));
      });
      pending = new Set();
      reply({ type: 'released' });
      break;
    case 'close':
      for (const socket of sockets) socket.terminate();
      sockets = [];
      reply({ type: 'closed' });
      break;
  }
});
reply({ type: 'started' });
