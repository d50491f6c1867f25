import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';

/** The benchmark's client side (bench/clients.ts) in a process of its own, driven over IPC. */
export interface Clients {
  /** Sends `command` and resolves with the first message of type `answer`. */
  send(command: Record<string, unknown>, answer: string): Promise<any>;
  stop(): void;
}

/** Forks bench/clients.ts and waits until it is ready. */
export async function startClients(): Promise<Clients> {
  const child: ChildProcess = fork(new URL('./clients.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx'] });
  await once(child, 'message');
  return {
    async send(command, answer) {
      const reply = new Promise((resolve) => {
        const listener = (message: any) => {
          if (message.type === answer) {
            child.off('message', listener);
            resolve(message);
          }
        };
        child.on('message', listener);
      });
      child.send(command);
      return reply;
    },
    stop: () => child.kill(),
  };
}
