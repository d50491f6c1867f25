import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import './resolvers/query.ts';
import './resolvers/mutation.ts';
import './resolvers/subscription.ts';
import './resolvers/recent-tasks.ts';
import './resolvers/viewer.ts';
import { builder } from './schema/index.ts';

/** The gateway's executable schema: the types of `schema/` with the root fields of `resolvers/`, built once. */
export const schema: GraphQLSchema = builder.toSchema();

/** The SDL checked in as `schema.graphql`: sorted, so that diffs stay small. */
export function printSortedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
