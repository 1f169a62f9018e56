/**
 * Every request gets an id: the client's `x-request-id` when it is a sane token (so a trace can
 * cross services), a fresh UUID otherwise. It is echoed in the response and carried by every log
 * line about the request. A client-chosen id is bounded and restricted so it cannot forge log lines.
 */
import type { Plugin } from 'graphql-yoga';
import { requestStateOf } from '../request-state.js';

export const REQUEST_ID_HEADER = 'x-request-id';
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function useRequestId(): Plugin {
  return {
    onRequest({ request }) {
      const given = request.headers.get(REQUEST_ID_HEADER);
      if (given !== null && SANE_ID.test(given)) requestStateOf(request).stats.requestId = given;
    },
    onResponse({ request, response }) {
      response.headers.set(REQUEST_ID_HEADER, requestStateOf(request).stats.requestId);
    },
  };
}
