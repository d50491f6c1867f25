import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';
import { type ScriptedUpstream, startScriptedUpstream } from '../helpers/scripted-upstream.ts';
import { type Stack, startStack } from '../helpers/stack.ts';

const hostileLinks = [
  'javascript:alert(document.cookie)',
  'data:text/html,<script>alert(1)</script>',
  'https://cdn.example/a.png',
  '/relative/b.png',
  'ftp://files.example/c.png',
  'http://cdn.example/d.png',
  'JaVaScRiPt:alert(2)',
];

describe('result links', () => {
  let upstream: ScriptedUpstream;
  let stack: Stack;
  const logs: any[] = [];
  beforeAll(async () => {
    upstream = await startScriptedUpstream('task-links');
    const destination = new Writable({
      write(chunk, _encoding, done) {
        logs.push(JSON.parse(chunk.toString()));
        done();
      },
    });
    stack = await startStack({ upstreamUrl: upstream.url, logger: createLogger('warn', destination) });
  });
  afterAll(async () => {
    await stack.stop();
    await upstream.stop();
  });

  it('lets only absolute http(s) URLs leave the gateway, and logs the drop once', async () => {
    upstream.script({
      status: 'completed',
      extra: { completed_at: 1_720_000_100, cost: 1, result: { images: [{ url: hostileLinks }], videos: [{ url: 'javascript:void 0' }] } },
    });
    const query = 'query { task(id: "task-links") { ... on CompletedTask { result { images { urls } videos { urls } } } } }';
    for (const key of ['sk-one', 'sk-two']) {
      const { data, errors } = await stack.gql(query, {}, key);
      expect(errors).toBeUndefined();
      expect(data.task.result).toEqual({
        images: [{ urls: ['https://cdn.example/a.png', 'http://cdn.example/d.png'] }],
        videos: [{ urls: [] }],
      });
    }
    const warnings = logs.filter((line) => /result link/.test(line.msg));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ taskId: 'task-links', scheme: 'javascript:' });
    expect(JSON.stringify(logs)).not.toContain('alert');
  });
});
