/**
 * The GraphQL types, one module each. Importing this registers them with the
 * builder; the root fields live in `src/resolvers/`, and
 * `src/executable-schema.ts` puts both together.
 */
import './scalars.ts';
import './task.ts';
import './task-errors.ts';
import './submit-task-input.ts';
import './cancel-task-result.ts';
import './task-watch-error.ts';
import './task-update.ts';
import './task-connection.ts';
import './submit-task-result.ts';
import './viewer.ts';

export { builder } from './builder.ts';
