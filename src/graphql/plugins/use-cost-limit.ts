/**
 * The cost limit: refuses an operation whose cost exceeds `maxCost` with a 400
 * GRAPHQL_VALIDATION_FAILED error, before any resolver runs — and a batched request (a JSON array of
 * operations) whose operations cost more than `maxCost` together, whole, before any of them runs. The
 * limit is per request: checked per operation only, a batch of 10 ran 10 × the cap (each at ~19 600)
 * in one request (test/api/limits.test.ts, "batched requests").
 *
 * The weighting is graphql-armor's (an object 2, a scalar 1, each level below the first ×1.5, a list
 * × its size), so the documented numbers keep their meaning. What differs is the list size.
 * graphql-armor's rule runs during validation, where variables are unknown, and reads a size only from
 * an integer literal (`first: 50`): a list sized by a variable (`first: $n`), by the schema default
 * (no `first` at all) or by an argument list (`users(ids: […])`) counted as a list of one. A request
 * of 150 bytes with `first: $n` at five levels built 500 000 posts and held the event loop for 11 s
 * (100 users with 50 posts each; test/api/limits.test.ts). So this check runs when the operation is about to
 * execute, with its variables, and each list field of `listArguments` counts:
 *
 * - the value it is given, literal or variable (`first: 50` → 50, `ids: [3 ids]` → 3), at most the
 *   field's maximum (a larger value is refused by the field itself, BAD_USER_INPUT);
 * - when the argument is omitted (or its variable is), the schema default (`posts` → 10), or the
 *   most the field accepts when there is none.
 *
 * Other fields given an integer `first` or `last` count it, as graphql-armor does. Fragments, inline
 * or named, count as the fields they hold (a fragment is not a level of nesting), each named one
 * computed once, so the walk stays linear in the size of the document.
 */
import {
  Kind,
  getOperationAST,
  parse,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValueNode,
} from 'graphql';
import { createGraphQLError, type GraphQLParams, type Plugin } from 'graphql-yoga';

export interface ListArgument {
  /** The argument that sizes the list (`first`, `ids`). */
  readonly argument: string;
  /** The largest size the field accepts: caps what a value counts, and counts for an omitted argument without a default. */
  readonly max: number;
}

export interface CostOptions {
  /** List fields by `Type.field` (e.g. `User.posts`) and the argument that sizes them. */
  readonly listArguments: Readonly<Record<string, ListArgument>>;
  /** @default 2 */
  readonly objectCost?: number;
  /** @default 1 */
  readonly scalarCost?: number;
  /** Multiplies the cost of each level below the first. @default 1.5 */
  readonly depthCostFactor?: number;
}

export interface CostLimitOptions extends CostOptions {
  /** Highest cost accepted, per request: one operation, or the operations of a batch together. */
  readonly maxCost: number;
  /**
   * A batch's documents are parsed here to be costed (yoga parses them later, one by one): with
   * this token limit, so that parse is bounded as yoga's is. @default no limit (the body limit)
   */
  readonly maxTokens?: number;
}

export function useCostLimit(options: CostLimitOptions): Plugin {
  const { maxCost } = options;
  if (!(maxCost > 0)) throw new RangeError(`maxCost must be positive, got ${String(maxCost)}`);
  let schema: GraphQLSchema | undefined;
  return {
    onSchemaChange({ schema: current }) {
      schema = current;
    },
    onRequestParse() {
      return {
        onRequestParseDone({ requestParserResult }) {
          if (!Array.isArray(requestParserResult) || schema === undefined) return;
          const costs = requestParserResult.map((params) => paramsCost(schema!, params, options));
          const total = costs.reduce((sum, cost) => sum + cost, 0);
          if (total <= maxCost) return;
          // Thrown from the request parser's hook: yoga answers it as the whole response, no operation run.
          throw createGraphQLError(
            `Query Cost limit of ${maxCost} per request exceeded: the batch's ${costs.length} operations cost ${total} together (${costs.join(' + ')}).`,
            { extensions: { code: 'GRAPHQL_VALIDATION_FAILED', http: { status: 400 } } },
          );
        },
      };
    },
    onExecute({ args, setResultAndStopExecution }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (!operation) return; // yoga answers "could not determine the operation" itself
      const cost = operationCost(args.schema, args.document, operation, args.variableValues ?? {}, options);
      if (cost <= maxCost) return;
      setResultAndStopExecution({
        errors: [
          createGraphQLError(`Query Cost limit of ${maxCost} exceeded, found ${cost}.`, {
            extensions: { code: 'GRAPHQL_VALIDATION_FAILED', http: { status: 400 } },
          }),
        ],
      });
    },
  };
}

/** The cost of `operation` with these variables. */
export function operationCost(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>>,
  options: CostOptions,
): number {
  const { listArguments } = options;
  const objectCost = options.objectCost ?? 2;
  const scalarCost = options.scalarCost ?? 1;
  const factor = options.depthCostFactor ?? 1.5;

  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  // A named fragment costs the same wherever it is spread: computed once. `null` marks one being
  // computed, so a cycle (refused by validation, but be safe) costs nothing instead of recursing.
  const fragmentCosts = new Map<string, number | null>();
  const variableDefaults = new Map<string, ValueNode>();
  for (const definition of operation.variableDefinitions ?? []) {
    if (definition.defaultValue)
      variableDefaults.set(definition.variable.name.value, definition.defaultValue);
  }

  function selectionsCost(selectionSet: SelectionSetNode, type: GraphQLNamedType | undefined): number {
    let cost = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        cost += fieldCost(selection, type);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        const condition = selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : type;
        cost += selectionsCost(selection.selectionSet, condition ?? undefined);
      } else {
        cost += fragmentCost(selection.name.value);
      }
    }
    return cost;
  }

  function fragmentCost(name: string): number {
    const known = fragmentCosts.get(name);
    if (known !== undefined) return known ?? 0;
    const fragment = fragments.get(name);
    if (fragment === undefined) return 0;
    fragmentCosts.set(name, null);
    const cost = selectionsCost(
      fragment.selectionSet,
      schema.getType(fragment.typeCondition.name.value) ?? undefined,
    );
    fragmentCosts.set(name, cost);
    return cost;
  }

  function fieldCost(node: FieldNode, parent: GraphQLNamedType | undefined): number {
    // Introspection has its own switch (GRAPHQL_INTROSPECTION) and a fixed shape.
    if (node.name.value === '__schema' || node.name.value === '__type') return 0;
    if (node.selectionSet === undefined) return scalarCost;
    const field =
      parent !== undefined && 'getFields' in parent
        ? (parent.getFields()[node.name.value] as GraphQLField<unknown, unknown> | undefined)
        : undefined;
    const children = selectionsCost(node.selectionSet, field ? namedType(field.type) : undefined);
    return (objectCost + factor * children) * listSize(node, parent, field);
  }

  function listSize(
    node: FieldNode,
    parent: GraphQLNamedType | undefined,
    field: GraphQLField<unknown, unknown> | undefined,
  ): number {
    const list = parent ? listArguments[`${parent.name}.${node.name.value}`] : undefined;
    const argument = list?.argument;
    const given = node.arguments?.find((a) =>
      argument !== undefined
        ? a.name.value === argument
        : a.name.value === 'first' || a.name.value === 'last',
    );
    const size = given === undefined ? undefined : sizeOf(given.value);
    if (list === undefined) return size ?? 1;
    // Beyond its maximum the field refuses the value itself, with a clearer message than ours.
    if (size !== undefined) return Math.min(size, list.max);
    const fallback = field?.args.find((a) => a.name === list.argument)?.defaultValue;
    return typeof fallback === 'number' ? fallback : list.max;
  }

  /** The size a value asks for; `undefined` when it leaves the argument to its default. */
  function sizeOf(value: ValueNode): number | undefined {
    switch (value.kind) {
      case Kind.INT:
        return Math.max(1, Number(value.value));
      case Kind.LIST:
        return Math.max(1, value.values.length);
      case Kind.VARIABLE: {
        const name = value.name.value;
        if (!(name in variables) || variables[name] === undefined) {
          const fallback = variableDefaults.get(name);
          return fallback === undefined ? undefined : sizeOf(fallback);
        }
        const given = variables[name];
        if (typeof given === 'number' && Number.isFinite(given)) return Math.max(1, Math.floor(given));
        if (Array.isArray(given)) return Math.max(1, given.length);
        return 1; // null or a value of the wrong type: refused when coerced or by the field
      }
      default:
        return 1;
    }
  }

  // The first level is a plain sum: the depth factor applies from the second on (as in graphql-armor).
  const root = schema.getRootType(operation.operation) ?? undefined;
  return selectionsCost(operation.selectionSet, root);
}

// Private:

/**
 * One operation of a batch, from its raw parameters. One that is not an object, does not parse or
 * names no operation costs 0 here: yoga refuses it on its own when it gets to it.
 */
function paramsCost(schema: GraphQLSchema, params: GraphQLParams, options: CostLimitOptions): number {
  // Still the client's raw JSON: an entry may be anything (`[null]`; test/api/fuzz.test.ts found it).
  if (typeof params !== 'object' || params === null || typeof params.query !== 'string') return 0;
  let document: DocumentNode;
  try {
    document = parse(params.query, {
      noLocation: true,
      ...(options.maxTokens !== undefined && { maxTokens: options.maxTokens }),
    });
  } catch {
    return 0;
  }
  const operation = getOperationAST(document, params.operationName ?? undefined);
  if (!operation) return 0;
  const variables = params.variables !== null && typeof params.variables === 'object' ? params.variables : {};
  return operationCost(schema, document, operation, variables, options);
}

// Structural, not `getNamedType`/`isObjectType`: those check `instanceof`, and a second copy of graphql
// (ESM next to yoga's CommonJS, as under vitest) makes them throw "from another module or realm".
function namedType(type: GraphQLType): GraphQLNamedType {
  let named: GraphQLType = type;
  while ('ofType' in named && named.ofType) named = named.ofType as GraphQLType;
  return named as GraphQLNamedType;
}
