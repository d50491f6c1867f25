import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;

/** Pids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        // The command name may hold spaces: the fields after its closing parenthesis are fixed.
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start, the production start', () => {
  let npm: ChildProcess | undefined;
  let gatewayPid: number | undefined;
  afterAll(() => {
    // npm runs in a process group of its own: whatever it left behind goes with it.
    if (gatewayPid !== undefined && alive(gatewayPid)) process.kill(gatewayPid, 'SIGKILL');
    if (npm?.pid !== undefined) {
      try {
        process.kill(-npm.pid, 'SIGKILL');
      } catch {
        // the group is gone
      }
    }
  });

  it('builds a stale dist/, runs `node dist/main.js` as npm’s own child, and stops it (no orphan) on SIGTERM to npm', {
    timeout: 180_000,
  }, async () => {
    // Older than every source: `npm start` must build again.
    if (existsSync(`${root}dist/main.js`)) utimesSync(`${root}dist/main.js`, 0, 0);
    npm = spawn('npm', ['start'], {
      cwd: root,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: '0', HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    npm.stdout!.on('data', (chunk) => (output += chunk));
    npm.stderr!.on('data', (chunk) => (output += chunk));
    const deadline = Date.now() + 150_000;
    let url: string | undefined;
    while (!url) {
      url = /GraphiQL at (http:\/\/\S+)\/graphql/.exec(output)?.[1];
      if (npm.exitCode !== null || Date.now() > deadline) throw new Error(`npm start never listened:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(output).toContain('building dist/');
    expect(statSync(`${root}dist/main.js`).mtimeMs).toBeGreaterThan(0);

    const children = childrenOf(npm.pid!);
    expect(children).toHaveLength(1);
    gatewayPid = children[0]!;
    const argv = readFileSync(`/proc/${gatewayPid}/cmdline`, 'utf8').split('\0');
    expect(argv.slice(1, 2)).toEqual(['dist/main.js']);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    // The demo page is found from dist/ too.
    expect(await (await fetch(`${url}/`)).text()).toContain('<html');

    npm.kill('SIGTERM');
    await once(npm, 'exit');
    const stopped = Date.now() + 15_000;
    while (alive(gatewayPid) && Date.now() < stopped) await new Promise((resolve) => setTimeout(resolve, 100));
    expect(alive(gatewayPid)).toBe(false);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    expect(output).toContain('task-gateway stopped');
  });
});
