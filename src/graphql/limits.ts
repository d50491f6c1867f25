import { type ASTVisitor, type DocumentNode, type GraphQLError, Kind, type ValidationContext, visit } from 'graphql';
import { badUserInput, gatewayError } from './errors.ts';

/** Deepest selection nesting accepted (GraphiQL's own introspection query is 14 deep). */
export const MAX_QUERY_DEPTH = 15;
/** Most aliased fields in one operation (aliases are how one query repeats an expensive field). */
export const MAX_ALIASES = 30;
/** Most distinct task ids one `tasksUpdated` may watch; on WebSocket each counts against `MAX_SUBSCRIPTIONS_PER_CONNECTION`. */
export const MAX_TASKS_PER_SUBSCRIPTION = 100;
/** Most upstream requests one operation may cause. */
export const MAX_UPSTREAM_CALLS_PER_OPERATION = 100;

/**
 * Most fields (and fragment spreads) one operation may select, counted before validation: graphql-js's
 * check that fields can be merged compares them pairwise, so a 10,000-token operation of repeated
 * fields costs a third of a second of CPU to refuse. GraphiQL's introspection query selects about 100.
 */
export const MAX_SELECTIONS = 1_000;

/** An operation past `MAX_SELECTIONS`, refused before validation runs; null when within it. */
export function tooManySelections(document: DocumentNode, max = MAX_SELECTIONS): GraphQLError | null {
  let selections = 0;
  const count = () => {
    selections += 1;
  };
  visit(document, { Field: count, FragmentSpread: count });
  return selections > max ? badUserInput(`The operation selects ${selections} fields; at most ${max} are allowed.`) : null;
}

/** Refuses operations nested deeper than `max` selections (fragments followed). */
export function maxDepthRule(max = MAX_QUERY_DEPTH) {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map(
      context
        .getDocument()
        .definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION)
        .map((d) => [d.name.value, d]),
    );
    const depthOf = (node: { selectionSet?: { selections: readonly any[] } }, seen: Set<string>): number => {
      if (!node.selectionSet) return 0;
      let deepest = 0;
      for (const selection of node.selectionSet.selections) {
        if (selection.kind === Kind.FRAGMENT_SPREAD) {
          const name = selection.name.value as string;
          const fragment = fragments.get(name);
          if (fragment && !seen.has(name)) deepest = Math.max(deepest, depthOf(fragment, new Set([...seen, name])) - 1);
        } else {
          deepest = Math.max(deepest, depthOf(selection, seen));
        }
      }
      return deepest + 1;
    };
    return {
      OperationDefinition(node) {
        const depth = depthOf(node, new Set()) - 1;
        if (depth > max) {
          context.reportError(
            gatewayError('BAD_USER_INPUT', `The operation is ${depth} levels deep; at most ${max} are allowed.`, { nodes: [node] }),
          );
        }
      },
    };
  };
}

/** Refuses operations with more than `max` aliased fields. */
export function maxAliasesRule(max = MAX_ALIASES) {
  return (context: ValidationContext): ASTVisitor => {
    let aliases = 0;
    return {
      Field(node) {
        if (node.alias) aliases += 1;
      },
      Document: {
        leave() {
          if (aliases > max) {
            context.reportError(badUserInput(`The operation has ${aliases} aliases; at most ${max} are allowed.`));
          }
        },
      },
    };
  };
}

/** The gateway's validation rules, added to GraphQL's own on every transport. */
export const costRules = [maxDepthRule(), maxAliasesRule()];

/**
 * A per-operation allowance of upstream requests, so that no operation (aliases,
 * long `tasks` lists, many mutations) fans out into hundreds of upstream calls.
 */
export function createUpstreamBudget(max = MAX_UPSTREAM_CALLS_PER_OPERATION) {
  let left = max;
  return (requests: number) => {
    if (requests > left) {
      throw badUserInput(`The operation would make more than ${max} upstream requests; split it.`);
    }
    left -= requests;
  };
}
