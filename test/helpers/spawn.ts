import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { track } from './leftovers.ts';

export interface Spawned {
  child: ChildProcess;
  /** Everything printed so far, stdout and stderr. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (within `timeoutMs`). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends SIGTERM and resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface SpawnOptions {
  /** Flags for Node itself, e.g. `--expose-gc`. Default none. */
  nodeArgs?: string[];
  /** The child's stdout: a file descriptor of the test's (a FIFO, a file). Default: a pipe read into `output()`. */
  stdout?: number;
}

/** Runs a TypeScript entry point of this repo in its own Node process, through tsx; registered with the leftovers. */
export function spawnEntry(entry: string, args: string[] = [], env: Record<string, string> = {}, options: SpawnOptions = {}): Spawned {
  const { nodeArgs = [], stdout = 'pipe' } = options;
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', entry, ...args], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', stdout, 'pipe'],
  });
  // Whatever happens to the test, the child does not outlive the test process.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let exitCode: number | null = null;
  const terminate = track(async () => {
    if (child.exitCode !== null || child.signalCode !== null) {
      exitCode = child.exitCode;
      return;
    }
    child.kill('SIGTERM');
    [exitCode] = (await once(child, 'exit')) as [number | null];
  });
  const stop = async () => {
    await terminate();
    return exitCode;
  };
  let text = '';
  child.stdout?.on('data', (chunk) => (text += chunk));
  child.stderr!.on('data', (chunk) => (text += chunk));
  return {
    child,
    output: () => text,
    async waitFor(pattern, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = text.match(pattern);
        if (match) return match;
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`never printed ${pattern}; output:\n${text}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    stop,
  };
}
