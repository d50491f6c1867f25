import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';

/** Where GraphiQL's scripts, styles and workers are served from. */
export const GRAPHIQL_ASSETS_PATH = '/graphiql/';

type AssetName = 'graphiql.js' | 'graphiql.css' | 'favicon.ico' | 'editorWorkerService.js' | 'json.js' | 'graphql.js';
export type Encoding = 'br' | 'gzip' | 'identity';

export interface Asset {
  type: string;
  identity: Buffer;
  encoded: Map<Encoding, Promise<Buffer>>;
}

export interface Bundle {
  /** A hash of every asset: part of their URLs, so that they can be cached for good. */
  version: string;
  assets: Map<string, Asset>;
}

export interface GraphiQLOptions {
  /**
   * Where `npm run build` left the assets compressed at brotli's best
   * (`<version>/<asset>.br` and `.gz`). Default: `graphiql-assets/` beside this module (so `dist/graphiql-assets/`).
   */
  precompressedDir?: URL;
  /** Brotli quality of assets compressed here, when none were left by the build: 0 to 11. Default 9 (about 1 s of CPU once). */
  brotliQuality?: number;
}

/**
 * GraphiQL without a CDN and without a 9 MB page: a small HTML page (what yoga
 * serves at `/graphql` to browsers) that loads yoga's GraphiQL bundle as
 * separate static files under `/graphiql/`, with long-lived caching and
 * negotiated compression (brotli, gzip). The bundle is loaded from the installed
 * package on the first request for it, and each encoding is made once.
 */
export interface GraphiQL {
  /** The page, for yoga's `renderGraphiQL`. */
  renderPage(options: Record<string, unknown>): Promise<string>;
  /** Answers `GET /graphiql/<version>/<asset>`; `path` is what follows `/graphiql/`. */
  handle(request: IncomingMessage, response: ServerResponse, path: string): Promise<void>;
}

export function createGraphiQL(options: GraphiQLOptions = {}): GraphiQL {
  const { precompressedDir = new URL('../graphiql-assets/', import.meta.url), brotliQuality = 9 } = options;
  let bundle: Promise<Bundle> | null = null;

  function encode(version: string, name: string, asset: Asset, encoding: Encoding): Promise<Buffer> {
    let encoded = asset.encoded.get(encoding);
    if (!encoded) {
      encoded =
        encoding === 'identity'
          ? Promise.resolve(asset.identity)
          : readFile(new URL(`${version}/${name}.${encoding === 'br' ? 'br' : 'gz'}`, precompressedDir)).catch(() =>
              compressAsset(asset.identity, encoding, brotliQuality),
            );
      asset.encoded.set(encoding, encoded);
    }
    return encoded;
  }

  return {
    async renderPage(pageOptions) {
      bundle ??= loadGraphiQLBundle();
      const at = `${GRAPHIQL_ASSETS_PATH}${(await bundle).version}/`;
      // `<` escaped: the options end up inside a <script>.
      const json = JSON.stringify(pageOptions).replace(/</g, '\\u003c');
      return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${escapeHtml(String(pageOptions.title ?? 'GraphiQL'))}</title>
    <link rel="icon" href="${at}favicon.ico" />
    <link rel="stylesheet" href="${at}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>You need to enable JavaScript to run this app.</noscript>
    <div id="root"></div>
    <script>
      self.MonacoEnvironment = { globalAPI: false, getWorkerUrl: (moduleId, label) => '${at}' + label + '.js' };
    </script>
    <script src="${at}graphiql.js"></script>
    <script>
      YogaGraphiQL.renderYogaGraphiQL(document.querySelector('#root'), ${json});
    </script>
  </body>
</html>
`;
    },

    async handle(request, response, path) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      bundle ??= loadGraphiQLBundle();
      const { version, assets } = await bundle;
      const [asked, name = ''] = path.split('/', 2);
      const asset = assets.get(name);
      if (!asset) {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found');
        return;
      }
      const headers: Record<string, string> = {
        'content-type': asset.type,
        // The version is in the URL: a browser keeps the asset for good and a reload costs nothing.
        // A page from before an upgrade still gets the assets, but not for keeps.
        'cache-control': asked === version ? 'public, max-age=31536000, immutable' : 'no-cache',
        vary: 'accept-encoding',
      };
      const encoding = negotiate(request.headers['accept-encoding']);
      const body = await encode(version, name, asset, encoding);
      if (encoding !== 'identity') headers['content-encoding'] = encoding;
      headers['content-length'] = String(body.length);
      response.writeHead(200, headers);
      response.end(request.method === 'HEAD' ? undefined : body);
    },
  };
}

/** Yoga's GraphiQL bundle, from the installed package, as separate assets. */
export async function loadGraphiQLBundle(): Promise<Bundle> {
  const source = await import('@graphql-yoga/render-graphiql/graphiql');
  const entries: Array<[AssetName, string, Buffer]> = [
    ['graphiql.js', 'text/javascript; charset=utf-8', Buffer.from(source.js)],
    ['graphiql.css', 'text/css; charset=utf-8', Buffer.from(source.css)],
    ['favicon.ico', 'image/x-icon', Buffer.from(source.favicon.slice(source.favicon.indexOf(',') + 1), 'base64')],
    ['editorWorkerService.js', 'text/javascript; charset=utf-8', Buffer.from(source.editorWorkerService)],
    ['json.js', 'text/javascript; charset=utf-8', Buffer.from(source.jsonWorker)],
    ['graphql.js', 'text/javascript; charset=utf-8', Buffer.from(source.graphqlWorker)],
  ];
  const hash = createHash('sha256');
  for (const [, , identity] of entries) hash.update(identity);
  return {
    version: hash.digest('base64url').slice(0, 16),
    assets: new Map(entries.map(([name, type, identity]) => [name, { type, identity, encoded: new Map() }])),
  };
}

/** Compresses off the event loop (zlib's thread pool). */
export function compressAsset(identity: Buffer, encoding: Exclude<Encoding, 'identity'>, brotliQuality: number): Promise<Buffer> {
  return encoding === 'br'
    ? promisify(brotliCompress)(identity, {
        params: {
          [constants.BROTLI_PARAM_QUALITY]: brotliQuality,
          [constants.BROTLI_PARAM_SIZE_HINT]: identity.length,
          [constants.BROTLI_PARAM_LGWIN]: 24,
        },
      })
    : promisify(gzip)(identity, { level: 9 });
}

/** The best encoding the client accepts: brotli, then gzip, else none. */
export function negotiate(header: string | string[] | undefined): Encoding {
  const accepted = new Map<string, number>();
  for (const part of String(header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined);
    if (name) accepted.set(name, q === undefined ? 1 : Number(q));
  }
  const weight = (name: string) => accepted.get(name) ?? accepted.get('*') ?? 0;
  if (weight('br') > 0) return 'br';
  if (weight('gzip') > 0) return 'gzip';
  return 'identity';
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}
