/**
 * A closed-loop HTTP load generator: `connections` clients, each sending the
 * next POST as soon as the previous answer is read, for `seconds` after a
 * warm-up. The same for the gateway and its baseline. Driven over IPC.
 */
import { Pool } from 'undici';

type Command = {
  type: 'run';
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  warmupSeconds: number;
  seconds: number;
};

// The bench that drives this process is gone (killed, or stopped with Ctrl-C): so is this process.
process.on('disconnect', () => process.exit(0));
process.on('message', async (command: Command) => {
  const target = new URL(command.url);
  const pool = new Pool(target.origin, { connections: command.connections, pipelining: 1 });
  let counting = false;
  let done = 0;
  let failed = 0;
  let stop = false;
  const client = async () => {
    while (!stop) {
      const response = await pool.request({ path: target.pathname, method: 'POST', headers: command.headers, body: command.body });
      const text = await response.body.text();
      if (!counting) continue;
      if (response.statusCode === 200 && !text.includes('"errors"')) done += 1;
      else failed += 1;
    }
  };
  const clients = Array.from({ length: command.connections }, client);
  await new Promise((resolve) => setTimeout(resolve, command.warmupSeconds * 1000));
  counting = true;
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, command.seconds * 1000));
  counting = false;
  const seconds = (performance.now() - started) / 1000;
  stop = true;
  await Promise.all(clients);
  await pool.close();
  process.send!({ type: 'result', perSecond: done / seconds, failed });
});
