/**
 * Refuses request bodies over `maxBytes` with HTTP 413 before yoga parses them, so a multi-megabyte
 * body costs us a header check, not a JSON parse. A body sent without Content-Length (chunked) is
 * read up to the limit and no further.
 */
import type { Plugin } from 'graphql-yoga';
import { adoptRequestState } from '../request-state.js';

export interface BodyLimitOptions {
  /** Largest accepted request body, bytes. */
  readonly maxBytes: number;
}

export function useBodyLimit({ maxBytes }: BodyLimitOptions): Plugin {
  if (!Number.isInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError(`maxBytes must be a positive integer, got ${String(maxBytes)}`);
  }
  const tooLarge = () =>
    Response.json(
      {
        errors: [
          { message: `request body exceeds ${maxBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } },
        ],
      },
      { status: 413, headers: { connection: 'close' } },
    );

  return {
    async onRequest({ request, setRequest, endResponse }) {
      if (request.body === null) return;
      const declared = request.headers.get('content-length');
      if (declared !== null) {
        if (Number(declared) > maxBytes) endResponse(tooLarge());
        return;
      }
      const body = await readAtMost(request.body, maxBytes);
      if (body === undefined) {
        endResponse(tooLarge());
        return;
      }
      const buffered = new Request(request.url, {
        method: request.method,
        headers: request.headers,
        body,
      });
      adoptRequestState(request, buffered);
      setRequest(buffered);
    },
  };
}

/** The whole stream if it fits in `max` bytes; `undefined` (and the stream cancelled) if not. */
async function readAtMost(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(new ArrayBuffer(size));
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
