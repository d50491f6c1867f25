import { InvalidTaskIdError } from './errors.ts';

/** The longest task id the gateway forwards. */
export const MAX_TASK_ID_LENGTH = 128;

/**
 * Letters, digits and `-`, `_`, `.`, starting with a letter or digit: every
 * id the upstream issues (`task-...`) fits, and no path separator, dot segment,
 * percent-escape, query string, control character or non-ASCII letter does.
 */
const taskIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Returns the id unchanged when the gateway may forward it, else throws `InvalidTaskIdError`. */
export function validateTaskId(id: string): string {
  if (id.length === 0) throw new InvalidTaskIdError('A task id must not be empty.');
  if (id.length > MAX_TASK_ID_LENGTH) {
    throw new InvalidTaskIdError(`A task id must be at most ${MAX_TASK_ID_LENGTH} characters long.`);
  }
  if (!taskIdPattern.test(id)) {
    throw new InvalidTaskIdError('A task id may only contain letters, digits and "-", "_", ".", and must start with a letter or digit.');
  }
  return id;
}
