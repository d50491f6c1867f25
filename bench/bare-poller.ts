/**
 * The baseline of per-poll CPU: what a bare undici loop costs for the same job
 * as the gateway's poller, GET + `JSON.parse` of each task every interval (with
 * the same ±10 % jitter), with nothing else. Driven over IPC.
 */
import { Agent } from 'undici';
import { MAX_IN_FLIGHT } from '../src/upstream/request-scheduling.ts';

type Command = { type: 'start'; url: string; key: string; ids: string[]; intervalMs: number } | { type: 'count' } | { type: 'stop' };

process.on('SIGTERM', () => process.exit(0));
// The gateway's pool, so that the baseline differs from it only in what the gateway adds.
const agent = new Agent({ keepAliveTimeout: 30_000, connections: MAX_IN_FLIGHT });
const timers: NodeJS.Timeout[] = [];
let parsed = 0;

// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', (command: Command) => {
  if (command.type === 'count') {
    process.send!({ type: 'count', parsed });
    return;
  }
  if (command.type === 'stop') {
    for (const timer of timers) clearTimeout(timer);
    void agent.close().then(() => process.exit(0));
    return;
  }
  const { url, key, ids, intervalMs } = command;
  const base = new URL(url);
  for (const [index, id] of ids.entries()) {
    const poll = async () => {
      const response = await agent.request({
        origin: base.origin,
        path: `${base.pathname}/tasks/${encodeURIComponent(id)}`,
        method: 'GET',
        headers: { authorization: `Bearer ${key}`, accept: 'application/json' },
      });
      if (JSON.parse(await response.body.text()).task_id === id) parsed += 1;
      timers[index] = setTimeout(poll, intervalMs * (0.9 + Math.random() * 0.2));
    };
    timers[index] = setTimeout(poll, Math.random() * intervalMs);
  }
  process.send!({ type: 'started', parsed });
});
