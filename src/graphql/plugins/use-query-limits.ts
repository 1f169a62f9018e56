/**
 * Bounds on what one operation may ask for, checked during validation — before any resolver runs,
 * so a hostile query costs a parse and a walk of its AST, never a database load. Depth, aliases and
 * tokens are graphql-armor's rules (well-kept, widely used); the cost limit is ours
 * (use-cost-limit.ts: it needs the variables, so it acts just before execution). The numbers are
 * documented in docs/security.md. A rejected operation is a GRAPHQL_VALIDATION_FAILED error with
 * HTTP 400 (the token limit: GRAPHQL_PARSE_FAILED).
 */
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, type ValidationContext } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import { MAX_IDS, MAX_PAGE_SIZE, MAX_POSTS_FIRST } from '../arguments.js';
import { useCostLimit, type ListArgument } from './use-cost-limit.js';

export interface QueryLimits {
  /** Deepest selection nesting. @default 10 */
  readonly maxDepth: number;
  /** Most aliases in one operation, `__typename`'s included. @default 30 */
  readonly maxAliases: number;
  /**
   * Highest cost in graphql-armor's weighting (objects, scalars, depth), lists counted at the size
   * they will get (use-cost-limit.ts). A 100-user page with profiles and three posts each with their
   * authors costs about 13 000. @default 20000
   */
  readonly maxCost: number;
  /** Most lexical tokens in one document: caps parse work. @default 2000 */
  readonly maxTokens: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxDepth: 10,
  maxAliases: 30,
  maxCost: 20_000,
  maxTokens: 2000,
};

// graphql-armor throws from inside the validation visitor by default, which yoga reports as an
// uncoded HTTP 200 error. Reporting through the validation context instead makes a limit error an
// ordinary validation error: code GRAPHQL_VALIDATION_FAILED, HTTP 400, like any other.
const report = {
  propagateOnRejection: false,
  exposeLimits: true,
  onReject: [
    (context: ValidationContext | null, error: GraphQLError) =>
      context?.reportError(new GraphQLError(error.message.replace(/^Syntax Error: /, ''))),
  ],
};

// The list fields and what sizes them, for the cost limit (use-cost-limit.ts): an omitted `first`
// counts as its default, an omitted `ids` cannot happen (required).
const LIST_ARGUMENTS: Record<string, ListArgument> = {
  'Query.users': { argument: 'ids', max: MAX_IDS },
  'Query.userPage': { argument: 'first', max: MAX_PAGE_SIZE },
  'User.posts': { argument: 'first', max: MAX_POSTS_FIRST },
};

const ABORTED =
  'Validation aborted: the operation is too complex to validate (too many fields of one name, or fragment spreads); remove the repetition';

export function useQueryLimits(limits: QueryLimits = DEFAULT_QUERY_LIMITS): Plugin {
  const rules = [
    maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, ...report }),
    // Every alias counts, `__typename`'s too: graphql-armor exempts it by default, so 31 or more
    // passed where the limit says 30 (each is still a field to resolve and to serialise).
    maxAliasesRule({ n: limits.maxAliases, allowList: [], ...report }),
  ];
  return {
    onPluginInit({ addPlugin }) {
      // The token limit acts while parsing (a parse error, GRAPHQL_PARSE_FAILED, HTTP 400).
      addPlugin(maxTokensPlugin({ n: limits.maxTokens, exposeLimits: true }) as Plugin);
      // The cost limit needs the variables: it acts when the operation is about to execute.
      addPlugin(
        useCostLimit({ maxCost: limits.maxCost, maxTokens: limits.maxTokens, listArguments: LIST_ARGUMENTS }),
      );
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
      // graphql-js stops validating past a work budget (hundreds of same-named fields to compare, or
      // fragment spreads to expand) with a bare "Validation aborted.": say why.
      return ({ result, setResult }) => {
        const aborted = (e: unknown) =>
          (e as { message?: unknown } | null)?.message === 'Validation aborted.';
        if (result.some(aborted))
          setResult(result.map((e) => (aborted(e) ? createGraphQLError(ABORTED) : e)));
      };
    },
  };
}
