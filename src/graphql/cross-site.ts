import type { CORSOptions, Plugin } from 'graphql-yoga';

/** The request body types a browser sends cross-site without a CORS preflight (the "simple" ones). */
const simpleContentTypes = ['application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'];

/**
 * Headers a browser sends cross-site only after a CORS preflight, one of which
 * (or a content type that is not a simple one, as Apollo Client sends) every GET
 * operation must carry: else any page could make a visitor's browser run a query
 * with the default key through an `<img src>` (`useCSRFPrevention` refuses with 403).
 * The names Apollo Router and Server accept, yoga's, and `Authorization`: a request
 * that brings its own key never spends the default one (and a browser's cached
 * `Basic` credentials are refused as malformed).
 */
export const PREFLIGHT_HEADERS = ['apollo-require-preflight', 'x-apollo-operation-name', 'x-graphql-yoga-csrf', 'authorization'] as const;

/**
 * Refuses operation POSTs that any web page can make a visitor's browser send
 * without asking (a form, or `fetch` with a simple body type): without this, a
 * page on any site could submit tasks with the default key. Clients send
 * `application/json` (or `application/graphql`), which needs a preflight that
 * only `CORS_ORIGINS` pass. Refused: `415` with an error message, before parsing.
 */
export function useCrossSiteRequestRefusal(): Plugin {
  return {
    onRequest({ request, endResponse, fetchAPI }) {
      if (request.method !== 'POST') return;
      const mediaType = (request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (mediaType !== '' && !simpleContentTypes.includes(mediaType)) return;
      const message = 'Operations must be POSTed as application/json; form-encoded, multipart and text/plain bodies are refused.';
      endResponse(
        new fetchAPI.Response(JSON.stringify({ errors: [{ message }] }), {
          status: 415,
          headers: { 'content-type': 'application/json' },
        }),
      );
    },
  };
}

/**
 * yoga's `cors` option from the `CORS_ORIGINS` allow-list: a listed origin gets
 * exactly itself back (never a reflection of whatever came), without
 * `access-control-allow-credentials` (keys travel in `Authorization`, not cookies);
 * any other origin gets no CORS header at all, so only same-origin pages work.
 */
export function corsFromAllowList(allowedOrigins: readonly string[]): (request: Request) => CORSOptions {
  return (request) => {
    const origin = request.headers.get('origin');
    if (origin === null || !allowedOrigins.includes(origin)) return false;
    return {
      origin: [origin],
      credentials: false,
      methods: ['GET', 'POST'],
      // No allowedHeaders: a listed origin may send what its client needs (yoga echoes the preflight's list).
      maxAge: 600, // 10 min
    };
  };
}

/**
 * With an allow-list, what CORS headers a response carries depends on the
 * request's `Origin`: say so (`Vary: Origin`), so that a shared cache never
 * hands one origin's answer (a persisted-query GET, say) to another.
 */
export function useVaryOnOrigin(): Plugin {
  return {
    onResponse({ response }) {
      const vary = response.headers.get('vary');
      if (
        !vary
          ?.toLowerCase()
          .split(/\s*,\s*/)
          .includes('origin')
      )
        response.headers.set('vary', vary ? `${vary}, Origin` : 'Origin');
    },
  };
}

/**
 * Every GraphQL answer depends on a credential (the caller's key, or the default
 * one), and on time: none may be kept by a shared cache (a CDN caching a
 * persisted-query GET by its URL would hand one key's tasks to another) nor by
 * the browser. Streams too; yoga's `no-cache` on SSE is replaced.
 */
export function useNoStoredAnswers(): Plugin {
  return {
    onResponse({ response }) {
      response.headers.set('cache-control', 'private, no-store');
    },
  };
}
