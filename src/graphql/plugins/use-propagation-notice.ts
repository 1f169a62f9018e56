/**
 * A mutation whose change is committed but not yet applied to the cache by any relay within
 * WRITE_PROPAGATION_TIMEOUT_MS (its write-through failed: src/cache/write/propagation.ts) says so:
 * `extensions.propagation = "pending"` on that operation's result. Until the relay catches up,
 * another instance may still serve the version the change replaced; the client may re-read later,
 * or treat the write as not yet visible everywhere (docs/contract.md, "Errors").
 */
import type { Plugin } from 'graphql-yoga';
import type { GraphQLContext } from '../context.js';

export const PROPAGATION_PENDING = 'pending';

export function usePropagationNotice(): Plugin<GraphQLContext> {
  return {
    onExecute({ args }) {
      const { notices } = args.contextValue;
      return {
        onExecuteDone({ result, setResult }) {
          if (!notices.propagationPending || Symbol.asyncIterator in result) return;
          setResult({ ...result, extensions: { ...result.extensions, propagation: PROPAGATION_PENDING } });
        },
      };
    },
  };
}
