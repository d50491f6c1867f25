/**
 * Watchers for `bench/performance.ts`, in a process of their own: `sockets`
 * graphql-ws connections (spoken by hand on raw `ws`), each task watched
 * `perTask` times, spread over the sockets. Reports when every watcher has its
 * first state, and when the last has the terminal one. Driven over IPC.
 */
import WebSocket from 'ws';

/** Each group: one key's tasks, watched `perTask` times each over `sockets` connections of that key. */
interface Group {
  key: string;
  sockets: number;
  ids: string[];
  perTask: number;
}
type Command = { type: 'watch'; url: string; groups: Group[] } | { type: 'open-raw'; url: string; sockets: number } | { type: 'close' };

const WATCH = 'subscription($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status progress } } }';
const wallClock = () => performance.timeOrigin + performance.now();
let sockets: WebSocket[] = [];

// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', async (command: Command) => {
  if (command.type === 'close') {
    for (const socket of sockets) socket.terminate();
    process.exit(0);
  }
  if (command.type === 'open-raw') {
    sockets = await Promise.all(
      Array.from(
        { length: command.sockets },
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const socket = new WebSocket(command.url);
            socket.on('error', reject);
            socket.on('open', () => resolve(socket));
          }),
      ),
    );
    process.send!({ type: 'opened' });
    return;
  }
  const { url, groups } = command;
  const watchers = groups.reduce((sum, group) => sum + group.ids.length * group.perTask, 0);
  let first = 0;
  let terminal = 0;
  const seen = new Set<string>();
  let serial = 0;
  for (const { key, sockets: count, ids, perTask } of groups) {
    const opened = await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<WebSocket>((resolve, reject) => {
            const socket = new WebSocket(url, 'graphql-transport-ws');
            socket.on('error', reject);
            socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } })));
            socket.once('message', () => {
              socket.on('message', (data) => {
                const text = data.toString();
                // A refused watch never primes: say why and stop, rather than leave the bench waiting.
                if (text.includes('"type":"error"')) {
                  console.error(`a watch was refused: ${text.slice(0, 300)}`);
                  process.exit(1);
                }
                if (!text.includes('"type":"next"')) return;
                const id = text.slice(7, text.indexOf('"', 7));
                if (!seen.has(id)) {
                  seen.add(id);
                  if (++first === watchers) process.send!({ type: 'primed', at: wallClock() });
                }
                if (text.includes('"COMPLETED"') && ++terminal === watchers) process.send!({ type: 'finished', at: wallClock() });
              });
              resolve(socket);
            });
          }),
      ),
    );
    sockets.push(...opened);
    for (const id of ids) {
      for (let copy = 0; copy < perTask; copy++) {
        const socket = opened[serial % opened.length]!;
        socket.send(JSON.stringify({ id: `w${serial++}`, type: 'subscribe', payload: { query: WATCH, variables: { id } } }));
      }
    }
  }
  process.send!({ type: 'subscribed' });
});
