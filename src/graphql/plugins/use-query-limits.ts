/**
 * Bounds on what one operation may ask for, checked during validation — before any resolver runs,
 * so a hostile query costs a parse and a walk of its AST, never a database load. The rules are
 * graphql-armor's (well-kept, widely used); the numbers are ours and documented in
 * docs/security.md. A rejected operation is a GRAPHQL_VALIDATION_FAILED error with HTTP 400.
 */
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import type { Plugin } from 'graphql-yoga';

export interface QueryLimits {
  /** Deepest selection nesting. @default 10 */
  readonly maxDepth: number;
  /** Most aliases in one operation. @default 30 */
  readonly maxAliases: number;
  /** Highest cost (graphql-armor's weighting of objects, scalars and depth). @default 5000 */
  readonly maxCost: number;
  /** Most lexical tokens in one document: caps parse work. @default 2000 */
  readonly maxTokens: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = {
  maxDepth: 10,
  maxAliases: 30,
  maxCost: 5000,
  maxTokens: 2000,
};

export function useQueryLimits(limits: QueryLimits = DEFAULT_QUERY_LIMITS): Plugin {
  return {
    onPluginInit({ addPlugin }) {
      // exposeLimits: the client is told the limit it crossed, which is what a legitimate client needs.
      addPlugin(maxTokensPlugin({ n: limits.maxTokens, exposeLimits: true }) as Plugin);
      addPlugin(
        maxDepthPlugin({ n: limits.maxDepth, exposeLimits: true, ignoreIntrospection: true }) as Plugin,
      );
      addPlugin(maxAliasesPlugin({ n: limits.maxAliases, exposeLimits: true }) as Plugin);
      addPlugin(
        costLimitPlugin({ maxCost: limits.maxCost, exposeLimits: true, ignoreIntrospection: true }) as Plugin,
      );
    },
  };
}
