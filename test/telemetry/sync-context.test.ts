import { createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import { SyncContextManager } from '../../src/telemetry/sync-context.ts';

const key = createContextKey('test.value');
const valued = (value: string) => ROOT_CONTEXT.setValue(key, value);

describe('SyncContextManager: a context active for the synchronous extent of `with` only', () => {
  it('makes a context active inside `with`, nests, and restores the outer one after a throw', () => {
    const manager = new SyncContextManager();
    expect(manager.active()).toBe(ROOT_CONTEXT);
    const seen = manager.with(valued('outer'), () => {
      const inner = manager.with(valued('inner'), () => manager.active().getValue(key));
      expect(() =>
        manager.with(valued('thrown'), () => {
          throw new Error('boom');
        }),
      ).toThrow('boom');
      return [inner, manager.active().getValue(key)];
    });
    expect(seen).toEqual(['inner', 'outer']);
    expect(manager.active()).toBe(ROOT_CONTEXT);
  });

  it('passes `this` and the arguments through', () => {
    const manager = new SyncContextManager();
    const target = { base: 40 };
    expect(
      manager.with(
        valued('x'),
        function (this: typeof target, a: number, b: number) {
          return this.base + a + b;
        },
        target,
        1,
        1,
      ),
    ).toBe(42);
  });

  it('does not follow an await: the continuation runs in whatever is active then', async () => {
    const manager = new SyncContextManager();
    const after = await manager.with(valued('before the await'), async () => {
      expect(manager.active().getValue(key)).toBe('before the await');
      await Promise.resolve();
      return manager.active().getValue(key);
    });
    expect(after).toBeUndefined();
  });

  it('binds a function to a context: it runs in it wherever it is called from', async () => {
    const manager = new SyncContextManager();
    const bound = manager.bind(valued('bound'), (suffix: string) => `${manager.active().getValue(key)}${suffix}`);
    await Promise.resolve();
    expect(bound('!')).toBe('bound!');
    expect(manager.active()).toBe(ROOT_CONTEXT);
    const notAFunction = { a: 1 };
    expect(manager.bind(valued('bound'), notAFunction)).toBe(notAFunction);
  });
});
