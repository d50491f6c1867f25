import {
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  getOperationAST,
  getVariableValues,
  Kind,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';

/**
 * How many subscriptions an operation counts as against a per-connection limit:
 * `tasksUpdated(ids)` counts one per distinct id (up to `maxIds`, past which the
 * field refuses it itself), anything else one. The root fields are found as
 * graphql-js finds them (through inline fragments and fragment spreads), and ids
 * given by variable are counted from the coerced variables, defaults included.
 * A malformed operation counts one and is refused by validation.
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

  const idsIn = (value: ValueNode | undefined): number => {
    if (value?.kind === Kind.LIST) return new Set(value.values.map((item) => (item.kind === Kind.STRING ? item.value : item.kind))).size;
    if (value?.kind === Kind.VARIABLE) {
      const given = coerced[value.name.value];
      if (Array.isArray(given)) return new Set(given.map(String)).size;
    }
    return 1;
  };

  const weigh = (selectionSet: SelectionSetNode, seen: ReadonlySet<string>): number => {
    let weight = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.INLINE_FRAGMENT) weight += weigh(selection.selectionSet, seen);
      else if (selection.kind === Kind.FRAGMENT_SPREAD) {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(fragment.name.value)) weight += weigh(fragment.selectionSet, new Set([...seen, fragment.name.value]));
      } else if (selection.name.value === 'tasksUpdated') {
        const ids = selection.arguments?.find((argument) => argument.name.value === 'ids')?.value;
        weight += Math.min(Math.max(idsIn(ids), 1), maxIds);
      } else weight += 1;
    }
    return weight;
  };

  return Math.max(weigh(operation.selectionSet, new Set()), 1);
}
