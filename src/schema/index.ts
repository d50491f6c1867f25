import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.ts';
import './scalars.ts';
import './task.ts';
import '../resolvers/query.ts';
import '../resolvers/mutation.ts';
import '../resolvers/subscription.ts';

/** The gateway's executable schema, built once from the Pothos types. */
export const schema: GraphQLSchema = builder.toSchema();

/** The SDL checked in as `schema.graphql`: sorted, so that diffs stay small. */
export function printSortedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
