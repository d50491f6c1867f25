import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from '@graphql-codegen/cli';
import { type DocumentNode, print } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTrustedDocuments } from '../../src/graphql/persisted-operations.ts';
import { sha256 } from '../../src/lib/sha256.ts';
import { type Spawned, spawnEntry } from '../helpers/spawn.ts';
import { type Stack, startStack } from '../helpers/stack.ts';
import { connectWs } from '../helpers/ws-client.ts';

const SCHEMA = new URL('../../schema.graphql', import.meta.url).pathname;
const OPERATIONS = `
mutation Submit($prompt: String!) {
  submitTask(input: { model: "gpt-image-2", prompt: $prompt }) { __typename ... on BaseTask { id status } }
}
query TaskById($id: ID!) { task(id: $id) { __typename ... on BaseTask { id status } } }
subscription WatchTask($id: ID!) { taskUpdated(id: $id) { __typename ... on BaseTask { id status } } }
`;

/**
 * Runs GraphQL Code Generator's client preset with `persistedDocuments: true`, as a frontend's
 * build would (no network: the schema and the operations are local files); returns its folder.
 */
async function codegen(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'codegen-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'operations.graphql'), OPERATIONS);
  await generate(
    {
      schema: SCHEMA,
      documents: [join(dir, 'src', '*.graphql')],
      silent: true,
      generates: { [join(dir, 'gql/')]: { preset: 'client', presetConfig: { persistedDocuments: true } } },
    },
    true,
  );
  return dir;
}

describe('trusted documents written by GraphQL Code Generator (TRUSTED_DOCUMENTS)', () => {
  let dir: string;
  let manifest: Record<string, string>;
  let gateway: Spawned;
  let url: string;
  beforeAll(async () => {
    dir = await codegen();
    manifest = JSON.parse(readFileSync(join(dir, 'gql', 'persisted-documents.json'), 'utf8'));
    gateway = spawnEntry('src/main.ts', [], {
      PORT: '0',
      HOST: '127.0.0.1',
      TRUSTED_DOCUMENTS: join(dir, 'gql', 'persisted-documents.json'),
    });
    // A liveness bound: a fresh Node process compiling the sources through tsx, on a busy machine.
    [, url] = (await gateway.waitFor(/GraphQL at (http:\/\/\S+)\/graphql/, 90_000)) as unknown as [string, string];
  }, 120_000);
  afterAll(async () => {
    await gateway?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The id the generated client carries for an operation (`__meta__.hash` of its document). */
  const idOf = (name: string) => {
    const generated = readFileSync(join(dir, 'gql', 'graphql.ts'), 'utf8');
    const hash = generated.match(new RegExp(`export const ${name}Document = \\{"__meta__":\\{"hash":"([^"]+)"`))?.[1];
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    return hash!;
  };
  const post = (body: object, accept = 'application/graphql-response+json') =>
    fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', accept }, body: JSON.stringify(body) });

  it('starts with the file the code generator wrote (keys sha256:<hex>)', () => {
    expect(Object.keys(manifest)).toHaveLength(3);
    for (const [id, text] of Object.entries(manifest)) expect(id).toBe(`sha256:${sha256(text)}`);
  });

  it('runs a document by documentId, as the generated client sends it, and by Apollo’s sha256Hash', async () => {
    const submitted = await post({ documentId: idOf('Submit'), variables: { prompt: 'a fox' } });
    expect(submitted.status).toBe(200);
    const { id } = ((await submitted.json()) as any).data.submitTask;
    expect(id).toBeTruthy();
    const byDocumentId = (await (await post({ documentId: idOf('TaskById'), variables: { id } })).json()) as any;
    expect(byDocumentId).toEqual({ data: { task: { __typename: 'QueuedTask', id, status: 'QUEUED' } } });
    const hex = idOf('TaskById').slice('sha256:'.length);
    const byApollo = await post({ variables: { id }, extensions: { persistedQuery: { version: 1, sha256Hash: hex } } });
    expect(await byApollo.json()).toEqual(byDocumentId);
    // GET, as GraphQL over HTTP's persisted documents put it: ?documentId=…&variables=…
    const get = new URL(`${url}/graphql`);
    get.searchParams.set('documentId', idOf('TaskById'));
    get.searchParams.set('variables', JSON.stringify({ id }));
    // With a header a browser sends cross-site only after a preflight (GraphQL GETs need one against CSRF).
    const headers = { accept: 'application/json', 'apollo-require-preflight': 'true' };
    expect(await (await fetch(get, { headers })).json()).toEqual(byDocumentId);
  });

  it('runs over WebSocket the text a client prints from the generated document, and nothing else', async () => {
    const generated = readFileSync(join(dir, 'gql', 'graphql.ts'), 'utf8');
    const literal = generated.match(/export const WatchTaskDocument = (\{.*\}) as unknown as/)?.[1];
    const document = JSON.parse(literal!) as DocumentNode;
    const printed = print(document);
    // graphql-js prints on several lines: not the file's text, so not its hash.
    expect(Object.values(manifest)).not.toContain(printed);
    const submitted = (await (await post({ documentId: idOf('Submit'), variables: { prompt: 'a fox' } })).json()) as any;
    const client = connectWs(url, null);
    const first = (query: string) =>
      new Promise<string>((resolve) => {
        client.subscribe(
          { query, variables: { id: submitted.data.submitTask.id } },
          {
            next: (result) => resolve(JSON.stringify(result)),
            error: (error) => resolve(JSON.stringify(error)),
            complete: () => undefined,
          },
        );
      });
    expect(await first(printed)).toContain('"QueuedTask"');
    expect(await first('subscription WatchTask($id: ID!) { taskUpdated(id: $id) { __typename } }')).toContain('PERSISTED_QUERY_ONLY');
  });

  it('refuses an unknown document and operation text with 400, in either response type', async () => {
    const unknown = `sha256:${sha256('{ __typename }')}`;
    for (const accept of ['application/graphql-response+json', 'application/json']) {
      for (const [body, code] of [
        [{ documentId: unknown }, 'PERSISTED_QUERY_NOT_FOUND'],
        [{ extensions: { persistedQuery: { version: 1, sha256Hash: sha256('{ __typename }') } } }, 'PERSISTED_QUERY_NOT_FOUND'],
        [{ query: Object.values(manifest)[0] }, 'PERSISTED_QUERY_ONLY'],
        [{ documentId: 'md5:not-one-of-ours' }, 'PERSISTED_QUERY_NOT_FOUND'],
      ] as const) {
        const response = await post(body, accept);
        expect(response.status).toBe(400);
        expect(response.headers.get('content-type')).toContain(accept);
        expect(((await response.json()) as any).errors[0].extensions.code).toBe(code);
      }
    }
  });

  it('serves neither GraphiQL nor the demo page', async () => {
    const graphiql = await fetch(`${url}/graphql`, { headers: { accept: 'text/html' } });
    expect(graphiql.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await graphiql.text()).not.toContain('<html');
    const demo = await fetch(`${url}/`, { headers: { accept: 'text/html' } });
    expect(demo.status).toBe(404);
    expect(await demo.text()).not.toContain('<html');
  });
});

describe('loadTrustedDocuments', () => {
  it('stops start-up on an entry that is not a GraphQL document, naming the file variable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'trusted-'));
    const path = join(dir, 'persisted-documents.json');
    writeFileSync(path, JSON.stringify({ [`sha256:${sha256('{ nonsense')}`]: '{ nonsense' }));
    expect(() => loadTrustedDocuments(path)).toThrow(/^TRUSTED_DOCUMENTS: .* is not a GraphQL document\.$/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('trusted documents with GRAPHIQL=on', () => {
  let stack: Stack;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trusted-'));
    const path = join(dir, 'persisted-documents.json');
    const allowed = 'query Allowed { __typename }';
    // Both key forms in one file: plain hex (Apollo's tooling) and sha256:<hex> (GraphQL Code Generator).
    const other = 'query Other { __typename }';
    writeFileSync(path, JSON.stringify({ [sha256(allowed)]: allowed, [`sha256:${sha256(other)}`]: other }));
    stack = await startStack({ env: { TRUSTED_DOCUMENTS: path, GRAPHIQL: 'on' }, trustedDocuments: loadTrustedDocuments(path) });
  });
  afterAll(() => stack.stop());

  it('serves GraphiQL and the demo page when asked to', async () => {
    const graphiql = await fetch(`${stack.gatewayUrl}/graphql`, { headers: { accept: 'text/html' } });
    expect(await graphiql.text()).toContain('<html');
    const demo = await fetch(`${stack.gatewayUrl}/`);
    expect(demo.status).toBe(200);
  });

  it('reads both key forms from one file', async () => {
    // Each asked for in the other form than the file lists it.
    for (const id of [`sha256:${sha256('query Allowed { __typename }')}`, sha256('query Other { __typename }')]) {
      const response = await fetch(`${stack.gatewayUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ documentId: id }),
      });
      expect(await response.json()).toEqual({ data: { __typename: 'Query' } });
    }
  });
});
