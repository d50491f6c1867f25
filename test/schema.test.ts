import { readFileSync } from 'node:fs';
import { parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { printSortedSchema, schema } from '../src/executable-schema.ts';
import { exampleOperations } from '../src/graphql/graphiql-examples.ts';

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
    expect(sdl).toMatch(/recentTasks\(after: String, first: Int = 20\): TaskConnection!/);
    expect(sdl).toMatch(/tasksUpdated\(ids: \[ID!\]!\): TaskUpdate!/);
    expect(sdl).toContain(
      'union TaskUpdate = CancelledTask | CompletedTask | FailedTask | ProcessingTask | QueuedTask | TaskNotFoundError | TaskWatchError | UnknownTask',
    );
    expect(sdl).toMatch(/type ProcessingTask implements BaseTask \{[^}]*estimatedCompletionAt: DateTime\n/);
    expect(sdl).toMatch(/type CancelledTask implements BaseTask & TerminalTask \{[^}]*refundedCost: Float\n/);
    expect(sdl).toMatch(/interface BaseTask \{[^}]*preConsumedCost: Float\n/);
  });
});

describe('the GraphiQL examples', () => {
  it('are valid operations of the schema, recentTasks and tasksUpdated included', () => {
    const document = parse(exampleOperations);
    expect(validate(schema, document)).toEqual([]);
    expect(exampleOperations).toContain('recentTasks(first: 20)');
    expect(exampleOperations).toContain('tasksUpdated(ids: $ids)');
  });
});
