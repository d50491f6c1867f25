import { GraphQLError, Kind, type ValueNode } from 'graphql';
import { isHttpUrl } from '../lib/http-url.ts';
import { builder } from './builder.ts';

builder.scalarType('DateTime', {
  description: 'An instant, as an ISO-8601 string in UTC (e.g. `2026-11-28T14:00:00.000Z`).',
  serialize: (value) => value.toISOString(),
  parseValue: (value) => parseDate(value),
});

builder.scalarType('URL', {
  description: 'An absolute http(s) URL.',
  // Links are filtered when a task is read; this is the second line of defence.
  serialize: (value) => {
    if (isHttpUrl(value)) return value;
    throw new GraphQLError('URL must be an absolute http(s) URL.');
  },
  parseValue: (value) => {
    if (isHttpUrl(value)) return value;
    throw new GraphQLError('URL must be an absolute http(s) URL.');
  },
});

builder.scalarType('JSONObject', {
  description: 'A JSON object, passed through as it is.',
  serialize: (value) => value,
  parseValue: (value) => {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    throw new GraphQLError('JSONObject must be a JSON object.');
  },
  parseLiteral: (node, variables) => {
    const value = literal(node, variables ?? {});
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    throw new GraphQLError('JSONObject must be a JSON object.');
  },
});

function parseDate(value: unknown): Date {
  const date = typeof value === 'string' ? new Date(value) : null;
  if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO-8601 string.');
  return date;
}

function literal(node: ValueNode, variables: Record<string, unknown>): unknown {
  switch (node.kind) {
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((field) => [field.name.value, literal(field.value, variables)]));
    case Kind.LIST:
      return node.values.map((item) => literal(item, variables));
    case Kind.STRING:
    case Kind.ENUM:
      return node.value;
    case Kind.BOOLEAN:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.VARIABLE:
      return variables[node.name.value];
  }
}
