import {
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  getArgumentValues,
  getOperationAST,
  getVariableValues,
  Kind,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { gatewayError } from './errors.ts';

/**
 * How many subscriptions an operation counts as against a per-connection limit:
 * `tasksUpdated(ids)` counts one per distinct id (up to `maxIds`, past which the
 * field refuses it itself), anything else one. The root fields are found as
 * graphql-js finds them (through inline fragments and fragment spreads), and the
 * ids are counted as the field will get them: the argument coerced with the
 * variables, whatever its syntax (`$ids`, `[$a, $b]`, `[1, 2]`, defaults).
 * A malformed operation counts one and is refused by validation or execution.
 */
export function subscriptionWeight(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  maxIds: number,
): number {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription') return 1;
  const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {}, { maxErrors: 1 }).coerced ?? {};
  const fragments = new Map(
    document.definitions
      .filter((definition): definition is FragmentDefinitionNode => definition.kind === Kind.FRAGMENT_DEFINITION)
      .map((fragment) => [fragment.name.value, fragment]),
  );

  const field = schema.getSubscriptionType()?.getFields().tasksUpdated;
  const idsIn = (node: FieldNode): number => {
    if (!field) return 1;
    try {
      const { ids } = getArgumentValues(field, node, coerced);
      return Array.isArray(ids) ? new Set(ids.map(String)).size : 1;
    } catch {
      return 1;
    }
  };

  const weigh = (selectionSet: SelectionSetNode, seen: ReadonlySet<string>): number => {
    let weight = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT) weight += weigh(selection.selectionSet, seen);
      else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) weight += weigh(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      } else if (selection.name.value === 'tasksUpdated') {
        weight += Math.min(Math.max(idsIn(selection), 1), maxIds);
      } else weight += 1;
    }
    return weight;
  };

  return Math.max(weigh(operation.selectionSet, new Set()), 1);
}

/**
 * The same weight over HTTP (SSE and multipart, through yoga): each such subscription is a
 * connection of its own, so one heavier than `maxWeight` (`MAX_SUBSCRIPTIONS_PER_CONNECTION`)
 * is refused with `TOO_MANY_SUBSCRIPTIONS` before it watches anything.
 */
export function useSubscriptionWeightLimit(maxWeight: number, maxIds: number): Plugin {
  return {
    onSubscribe({ args, setResultAndStopExecution }) {
      const weight = subscriptionWeight(args.schema, args.document, args.operationName, args.variableValues, maxIds);
      if (weight <= maxWeight) return;
      setResultAndStopExecution({
        errors: [
          gatewayError(
            'TOO_MANY_SUBSCRIPTIONS',
            `A subscription may watch at most ${maxWeight} tasks (MAX_SUBSCRIPTIONS_PER_CONNECTION); this one needs ${weight} (tasksUpdated counts one per id).`,
          ),
        ],
      });
    },
  };
}
