import { describe, expect, it } from 'vitest';
import { createTaskPoller } from '../../src/pollers/task-poller.ts';
import { createTerminalCache } from '../../src/pollers/terminal-cache.ts';
import { createCredential } from '../../src/upstream/credential.ts';
import type { TaskSnapshot } from '../../src/upstream/task-snapshot.ts';
import { createTasksClient } from '../../src/upstream/tasks-client.ts';
import { track } from '../helpers/leftovers.ts';
import { json, startStandIn } from '../helpers/stand-in.ts';

const finished = (id: string) => ({ id, status: 'COMPLETED' }) as TaskSnapshot;

describe('the terminal cache, bounded per key and in total', () => {
  it("keeps another key's finished task however many one key finishes (10 000, through the poller)", async () => {
    // Any task id answers completed, so every read below is one upstream GET unless the cache has it.
    const upstream = await startStandIn((request, response) => {
      const id = request.url.split('/').pop()!;
      json(response, 200, {
        task_id: id,
        status: 'completed',
        model: 'gpt-image-2',
        action: 'generate',
        progress: 100,
        created_at: 1_720_000_000,
        completed_at: 1_720_000_100,
        cost: 1,
        result: { images: [{ url: ['https://cdn.example/1.png'], expires_at: 1_720_600_000 }] },
      });
    });
    const client = createTasksClient({ baseUrl: upstream.url });
    track(() => client.close());
    const poller = createTaskPoller({ client });
    track(() => poller.dispose());
    const quiet = createCredential('sk-quiet-key');
    const busy = createCredential('sk-busy-key');

    expect((await poller.read(quiet, 'task-quiet')).status).toBe('COMPLETED');
    const ids = Array.from({ length: 10_000 }, (_, i) => `task-busy-${i}`);
    for (let at = 0; at < ids.length; at += 200) {
      await Promise.all(ids.slice(at, at + 200).map((id) => poller.read(busy, id)));
    }
    const sent = upstream.requests.length;
    expect(sent).toBe(10_001);

    expect((await poller.read(quiet, 'task-quiet')).status).toBe('COMPLETED');
    expect(upstream.requests.length).toBe(sent);
    // The busy key kept its own most recent ones, within its share.
    await poller.read(busy, ids.at(-1)!);
    expect(upstream.requests.length).toBe(sent);
    expect(poller.stats().terminal).toBeLessThanOrEqual(1_001);
  }, 60_000);

  it("drops a key's least recently used past its own bound, and no other key's", () => {
    const cache = createTerminalCache({ maxEntries: 100, maxEntriesPerKey: 3 });
    cache.set('other', 'o', finished('o'));
    for (const id of ['a', 'b', 'c']) cache.set('mine', id, finished(id));
    expect(cache.get('mine', 'a')?.id).toBe('a'); // a is now more recent than b
    cache.set('mine', 'd', finished('d'));
    expect(cache.get('mine', 'b')).toBeUndefined();
    expect(['a', 'c', 'd'].map((id) => cache.get('mine', id)?.id)).toEqual(['a', 'c', 'd']);
    expect(cache.get('other', 'o')?.id).toBe('o');
    expect(cache.size).toBe(4);
  });

  it('holds at most its total bound over many keys, least recently used first', () => {
    const cache = createTerminalCache({ maxEntries: 50, maxEntriesPerKey: 10 });
    for (let key = 0; key < 1_000; key += 1) {
      cache.set(`key-${key}`, 'task', finished(`t${key}`));
      if (key === 10) expect(cache.get('key-0', 'task')?.id).toBe('t0');
    }
    expect(cache.size).toBe(50);
    expect(cache.get('key-0', 'task')).toBeUndefined();
    expect(cache.get('key-999', 'task')?.id).toBe('t999');
    expect(cache.get('key-950', 'task')?.id).toBe('t950');
    expect(cache.get('key-949', 'task')).toBeUndefined();
    // A key whose entries all went holds nothing more: a new one for it still fits in its share.
    for (let id = 0; id < 10; id += 1) cache.set('key-0', `task-${id}`, finished(`n${id}`));
    expect(cache.get('key-0', 'task-0')?.id).toBe('n0');
    expect(cache.size).toBe(50);
  });

  it('forgets a snapshot after its time to live', () => {
    let now = 0;
    const cache = createTerminalCache({ ttlMs: 1_000, now: () => now });
    cache.set('mine', 'a', finished('a'));
    now = 999;
    expect(cache.get('mine', 'a')?.id).toBe('a');
    now = 1_000;
    expect(cache.get('mine', 'a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
