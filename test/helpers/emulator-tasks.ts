import type { Emulator } from '../../src/emulator/emulator.ts';

/** Creates `count` tasks of `key` straight on the emulator (no gateway in between); answers their ids. */
export async function createTasks(emulator: Emulator, key: string, count: number, body: Record<string, unknown> = {}): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const response = await fetch(`${emulator.url}/tasks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
        body: JSON.stringify({ model: 'veo3.1-fast', ...body }),
      });
      return ((await response.json()) as { task_id: string }).task_id;
    }),
  );
}
