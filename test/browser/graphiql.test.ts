import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ARTIFACTS, launchChromium } from '../helpers/browser.ts';
import { type Spawned, spawnEntry } from '../helpers/spawn.ts';

describe('GraphiQL in a real browser, against npm start', () => {
  let browser: Browser;
  let gateway: Spawned;
  let url: string;
  beforeAll(async () => {
    gateway = spawnEntry('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1' });
    [, url] = (await gateway.waitFor(/GraphiQL at (http:\/\/[\d.:]+)\/graphql/)) as unknown as [string, string];
    browser = await launchChromium();
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.stop();
  });

  it('submits a task, then watches its progress arrive in the result pane until it completes', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const submit =
      'mutation Submit { submitTask(input: { model: "gpt-image-2", prompt: "a lighthouse" }) { __typename ... on BaseTask { id status } } }';
    await page.goto(`${url}/graphql?query=${encodeURIComponent(submit)}`);
    await page.locator('.graphiql-execute-button').click();
    const response = page.locator('.graphiql-response');
    await expect.poll(() => response.innerText(), { timeout: 15_000 }).toContain('QueuedTask');
    const id = (await response.innerText()).match(/task-[0-9a-f-]{36}/)![0];

    const watch = `subscription Watch { taskUpdated(id: "${id}") { __typename ... on BaseTask { status progress } } }`;
    await page.goto(`${url}/graphql?query=${encodeURIComponent(watch)}`);
    await page.locator('.graphiql-execute-button').click();
    const seen = new Set<string>();
    const deadline = Date.now() + 40_000;
    while (Date.now() < deadline) {
      const text = await response.innerText();
      const state = text.match(/"status":\s*"(\w+)",\s*"progress":\s*(\w+)/);
      if (state) seen.add(`${state[1]}:${state[2]}`);
      if (state?.[1] === 'COMPLETED') break;
      await page.waitForTimeout(100);
    }
    await page.screenshot({ path: `${ARTIFACTS}graphiql.png` });
    const states = [...seen];
    expect(states.at(-1)).toBe('COMPLETED:100');
    // Progress moved in the pane: several processing states arrived before the end.
    expect(states.filter((state) => state.startsWith('PROCESSING')).length).toBeGreaterThanOrEqual(2);
  }, 60_000);
});
