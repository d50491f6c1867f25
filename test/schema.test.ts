import { readFileSync } from 'node:fs';
import { LoneAnonymousOperationRule, parse, specifiedRules, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { printSortedSchema, schema } from '../src/executable-schema.ts';
import { exampleOperations } from '../src/graphql/graphiql-examples.ts';

describe('schema.graphql', () => {
  it('is the printed Pothos schema (run `npm run schema` after changing types)', () => {
    const checkedIn = readFileSync(new URL('../schema.graphql', import.meta.url), 'utf8');
    expect(checkedIn).toBe(printSortedSchema());
  });

  it('declares the contract clients rely on: the Task union by state, its operations and fields', () => {
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

describe('the operations the documentation shows', () => {
  it.each(['README.md', 'docs/api.md', 'docs/end-users.md'])('are valid operations of the schema in %s', (file) => {
    const text = readFileSync(new URL(`../${file}`, import.meta.url), 'utf8');
    const blocks = [...text.matchAll(/```graphql\n([\s\S]*?)```/g)].map((match) => match[1]!);
    if (file !== 'README.md') expect(blocks.length).toBeGreaterThan(0);
    // A block may show several anonymous operations side by side: each must be valid on its own.
    const rules = specifiedRules.filter((rule) => rule !== LoneAnonymousOperationRule);
    for (const block of blocks) expect({ block, errors: validate(schema, parse(block), rules).map(String) }).toEqual({ block, errors: [] });
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
