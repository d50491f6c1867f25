/** A vitest setup file: runs the leftovers registry (see leftovers.ts) around every test of every file. */
import { afterAll, afterEach, beforeEach } from 'vitest';
import { beginTest, disposeLeftovers } from './leftovers.ts';

// Registered before each file's own hooks, so (after-hooks running in reverse) these run after them.
beforeEach(() => beginTest());
afterEach(() => disposeLeftovers('test'));
afterAll(() => disposeLeftovers('file'));
