/**
 * Bounds on what one operation may ask for, checked during validation — before any resolver runs,
 * so a hostile query costs a parse and a walk of its AST, never a database load. The rules are
 * graphql-armor's (well-kept, widely used); the numbers are ours and documented in
 * docs/security.md. A rejected operation is a GRAPHQL_VALIDATION_FAILED error with HTTP 400.
 */
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesRule } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthRule } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, type ValidationContext } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface QueryLimits {
  /** Deepest selection nesting. @default 10 */
  readonly maxDepth: number;
  /** Most aliases in one operation. @default 30 */
  readonly maxAliases: number;
  /**
   * Highest cost in graphql-armor's weighting (objects, scalars, depth). The largest legitimate
   * query — a 100-user page with profiles and posts with authors — costs about 12 500. @default 20000
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

export function useQueryLimits(limits: QueryLimits = DEFAULT_QUERY_LIMITS): Plugin {
  const rules = [
    maxDepthRule({ n: limits.maxDepth, ignoreIntrospection: true, ...report }),
    maxAliasesRule({ n: limits.maxAliases, ...report }),
    costLimitRule({ maxCost: limits.maxCost, ignoreIntrospection: true, ...report }),
  ];
  return {
    onPluginInit({ addPlugin }) {
      // The token limit acts while parsing (a parse error, GRAPHQL_PARSE_FAILED, HTTP 400).
      addPlugin(maxTokensPlugin({ n: limits.maxTokens, exposeLimits: true }) as Plugin);
    },
    onValidate({ addValidationRule }) {
      for (const rule of rules) addValidationRule(rule);
    },
  };
}
