import { type DocumentNode, getOperationAST, Kind } from 'graphql';

/**
 * How many subscriptions an operation counts as against a per-connection limit:
 * `tasksUpdated(ids)` counts one per id (up to `maxIds`, past which the field
 * refuses it itself), anything else one. Ids given by variable are counted from
 * the variables; a malformed value counts one and is refused by validation.
 */
export function subscriptionWeight(
  document: DocumentNode,
  operationName: string | null | undefined,
  variables: Record<string, unknown> | null | undefined,
  maxIds: number,
): number {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'subscription') return 1;
  let weight = 0;
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.name.value !== 'tasksUpdated') {
      weight += 1;
      continue;
    }
    const ids = selection.arguments?.find((argument) => argument.name.value === 'ids')?.value;
    let count = 1;
    if (ids?.kind === Kind.LIST) count = ids.values.length;
    else if (ids?.kind === Kind.VARIABLE) {
      const value = variables?.[ids.name.value];
      if (Array.isArray(value)) count = new Set(value.map(String)).size;
    }
    weight += Math.min(Math.max(count, 1), maxIds);
  }
  return Math.max(weight, 1);
}
