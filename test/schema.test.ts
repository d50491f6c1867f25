import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printSortedSchema } from '../src/executable-schema.ts';

describe('schema.graphql', () => {
  it('is the printed Pothos schema (run `npm run schema` after changing types)', () => {
    const checkedIn = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(checkedIn).toBe(printSortedSchema());
  });

  it('declares the Task union by state and the contract fields of DESIGN.md', () => {
    const sdl = printSortedSchema();
    expect(sdl).toContain('union Task = CancelledTask | CompletedTask | FailedTask | ProcessingTask | QueuedTask | UnknownTask');
    expect(sdl).toContain('union CancelTaskResult = CancelledTask | TaskNotCancellableError | TaskNotFoundError');
    expect(sdl).toMatch(/task\(id: ID!\): Task\n/);
    expect(sdl).toMatch(/tasks\(ids: \[ID!\]!\): \[Task\]!/);
  });
});
