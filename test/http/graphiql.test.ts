import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { negotiate } from '../../src/http/graphiql.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

describe('GraphiQL', () => {
  let stack: Stack;
  let page: string;
  beforeAll(async () => {
    stack = await startStack();
    page = await (await fetch(`${stack.gatewayUrl}/graphql`, { headers: { accept: 'text/html' } })).text();
  });
  afterAll(() => stack.stop());

  const assetUrls = () => [...page.matchAll(/(?:href|src)="(\/graphiql\/[^"]+)"/g)].map((match) => match[1]!);

  it('is a small page that loads its scripts and styles from the gateway, not inline and not from a CDN', () => {
    expect(page.length).toBeLessThan(4_096);
    expect(page).not.toMatch(/https?:\/\//);
    expect(assetUrls()).toHaveLength(3);
    expect(page).toContain('YogaGraphiQL.renderYogaGraphiQL');
  });

  it('serves each asset compressed as the browser asks, cached for good under its versioned URL', async () => {
    const workers = ['editorWorkerService', 'json', 'graphql'].map((label) => `${assetUrls()[0]!.replace(/[^/]+$/, '')}${label}.js`);
    for (const path of [...assetUrls(), ...workers]) {
      const identity = Buffer.from(
        await (await fetch(`${stack.gatewayUrl}${path}`, { headers: { 'accept-encoding': 'identity' } })).arrayBuffer(),
      );
      expect(identity.length).toBeGreaterThan(1_000);
      for (const [encoding, decode] of [
        ['br', brotliDecompressSync],
        ['gzip', gunzipSync],
      ] as const) {
        // fetch would decode the body itself: a raw request shows the bytes on the wire.
        const response = await rawGet(`${stack.gatewayUrl}${path}`, { 'accept-encoding': `${encoding}, identity;q=0.5` });
        expect(response.headers['content-encoding']).toBe(encoding);
        expect(response.headers['cache-control']).toBe('public, max-age=31536000, immutable');
        expect(response.headers.vary).toBe('accept-encoding');
        expect(response.body.length).toBeLessThan(identity.length);
        expect(decode(response.body).equals(identity)).toBe(true);
      }
    }
  });

  it('does not let an old page cache assets of another version for good, and refuses other methods', async () => {
    const stale = await rawGet(`${stack.gatewayUrl}/graphiql/old-version/graphiql.css`, {});
    expect(stale.status).toBe(200);
    expect(stale.headers['cache-control']).toBe('no-cache');
    expect((await rawGet(`${stack.gatewayUrl}/graphiql/old-version/nope.js`, {})).status).toBe(404);
    expect((await fetch(`${stack.gatewayUrl}${assetUrls()[0]}`, { method: 'POST' })).status).toBe(405);
  });

  it('negotiates brotli first, then gzip, honouring q=0', () => {
    expect(negotiate('gzip, deflate, br')).toBe('br');
    expect(negotiate('gzip, br;q=0')).toBe('gzip');
    expect(negotiate('*')).toBe('br');
    expect(negotiate('identity')).toBe('identity');
    expect(negotiate(undefined)).toBe('identity');
  });
});

async function rawGet(url: string, headers: Record<string, string>) {
  const { request } = await import('node:http');
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    request(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }));
    })
      .on('error', reject)
      .end();
  });
}
