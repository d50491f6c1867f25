import type { IncomingMessage } from 'node:http';

/** The names a local gateway answers to, on any port: what `ALLOWED_HOSTS` holds when unset (with `PUBLIC_URL`'s host). */
export const LOOPBACK_HOSTS: readonly string[] = Object.freeze(['localhost', '127.0.0.1', '[::1]']);

/** Why a request is refused: shown to the caller as is (it names no value the caller sent). */
const HOST_REFUSAL =
  'This gateway does not answer to the Host this request names. Add the name to ALLOWED_HOSTS (names other than the listed ones are refused against DNS rebinding).';
const ORIGIN_REFUSAL =
  'Pages of this origin may not open a WebSocket here: list it in CORS_ORIGINS, or serve the page from a host in ALLOWED_HOSTS.';

export interface HostAllowListOptions {
  /** `host` or `host:port` entries, lower case (`[::1]` for IPv6); without a port, any port. null: any `Host` (`ALLOWED_HOSTS=*`). Default `LOOPBACK_HOSTS`. */
  allowedHosts?: readonly string[] | null;
  /** Exact origins (`https://app.example`) whose pages may open WebSockets (`CORS_ORIGINS`). Default none. */
  corsOrigins?: readonly string[];
}

/**
 * Which names the gateway answers to, against DNS rebinding: a page on
 * `rebind.attacker.example` whose name comes to resolve to this gateway sends
 * `Host` and `Origin` of its own name, and would otherwise spend the default key
 * and read what it answers. The `Host` of every request that reaches GraphQL must
 * be listed; a WebSocket's `Origin` must be listed in `CORS_ORIGINS` or name a
 * listed host. Neither is ever compared with the request's own `Host`, which the
 * attacker chose.
 */
export interface HostAllowList {
  /** Whether a request naming this `Host` may go on (a request with none may not). */
  allowsHost(host: string | undefined): boolean;
  /** Whether a page of this `Origin` may open a WebSocket; no `Origin` (not a browser) may. */
  allowsWebSocketOrigin(origin: string | undefined): boolean;
  /** The JSON body of a refusal for a `Host` not listed (sent with status 421). */
  readonly hostRefusal: { errors: Array<{ message: string }> };
  /** The raw HTTP answer refusing a WebSocket upgrade (421 for its `Host`, 403 for its `Origin`), or null to accept it. */
  upgradeRefusal(request: IncomingMessage): string | null;
}

/** Builds the allow-list from `ALLOWED_HOSTS` and `CORS_ORIGINS` (validated by `src/config.ts`). */
export function createHostAllowList(options: HostAllowListOptions = {}): HostAllowList {
  const { allowedHosts = LOOPBACK_HOSTS, corsOrigins = [] } = options;
  const entries = allowedHosts?.map(parseHost).filter((entry) => entry !== null) ?? null;

  // With any host allowed (null), a WebSocket origin still has to be one of CORS_ORIGINS.
  const listed = (name: { hostname: string; port: string } | null) =>
    name !== null &&
    (entries?.some((entry) => entry.hostname === name.hostname && (entry.port === '' || entry.port === name.port)) ?? false);

  const allowsHost = (host: string | undefined) => entries === null || (host !== undefined && listed(parseHost(host)));

  function allowsWebSocketOrigin(origin: string | undefined): boolean {
    if (origin === undefined || corsOrigins.includes(origin)) return true;
    try {
      const { protocol, host } = new URL(origin);
      return (protocol === 'http:' || protocol === 'https:') && listed(parseHost(host));
    } catch {
      return false;
    }
  }

  return {
    allowsHost,
    allowsWebSocketOrigin,
    hostRefusal: { errors: [{ message: HOST_REFUSAL }] },
    upgradeRefusal(request) {
      if (!allowsHost(request.headers.host)) return rawRefusal(421, 'Misdirected Request', HOST_REFUSAL);
      if (!allowsWebSocketOrigin(request.headers.origin)) return rawRefusal(403, 'Forbidden', ORIGIN_REFUSAL);
      return null;
    },
  };
}

/** `host[:port]` as a `Host` header or an `ALLOWED_HOSTS` entry spells it, normalised by the URL parser (lower case, `:80` dropped); null when it is not one. */
export function parseHost(value: string): { hostname: string; port: string } | null {
  if (!/^[\w.:[\]-]+$/.test(value)) return null;
  try {
    const url = new URL(`http://${value}`);
    if (url.host !== value.toLowerCase().replace(/:80$/, '')) return null;
    // A fully qualified `localhost.` is `localhost`.
    return { hostname: url.hostname.replace(/\.$/, ''), port: url.port };
  } catch {
    return null;
  }
}

function rawRefusal(status: number, reason: string, message: string): string {
  const body = JSON.stringify({ errors: [{ message }] });
  return `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
