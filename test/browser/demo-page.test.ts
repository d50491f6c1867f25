import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConfig } from '../../src/config.ts';
import { createGateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/logger.ts';
import { ARTIFACTS, launchChromium } from '../helpers/browser.ts';
import { track } from '../helpers/leftovers.ts';
import { type Stack, startEmulator, startStack } from '../helpers/stack.ts';

describe('the demo page in a real browser', () => {
  let browser: Browser;
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      emulator: { queuedMs: 3_000, processingMs: 4_000 },
      env: { UPSTREAM_API_KEY: 'sk-demo', POLL_INTERVAL_MS: '200', POLL_MAX_INTERVAL_MS: '400' },
    });
    browser = await launchChromium();
  }, 30_000);
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('submits tasks, moves their progress bars live, cancels a queued one and links the results', async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(`${stack.gatewayUrl}/`);
    await expect.poll(() => page.title()).toBe('task-gateway demo');

    // One to cancel while it is queued.
    await page.getByLabel('Prompt').fill('a boat to cancel');
    await page.getByRole('button', { name: 'Submit task' }).click();
    const first = page.locator('li.task').first();
    await expect.poll(() => first.locator('.status').innerText()).toBe('QUEUED');
    await first.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => first.locator('.status').innerText(), { timeout: 10_000 }).toBe('CANCELLED');
    await expect.poll(() => first.locator('.cost').innerText()).toBe('refunded 300');
    const cancelledId = await first.getAttribute('id');

    // One to watch to the end.
    await page.getByLabel('Model').selectOption('veo3.1-fast');
    await page.getByLabel('Prompt').fill('a wave at dusk');
    await page.getByRole('button', { name: 'Submit task' }).click();
    const task = page.locator('li.task').first();
    await expect.poll(() => task.getAttribute('id')).not.toBe(cancelledId);
    const progress = task.getByRole('progressbar');
    const values = new Set<string>();
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && (await task.locator('.status').innerText()) !== 'COMPLETED') {
      values.add((await progress.getAttribute('value')) ?? '');
      await page.waitForTimeout(100);
    }
    expect(await task.locator('.status').innerText()).toBe('COMPLETED');
    expect([...values].filter((value) => Number(value) > 0 && Number(value) < 100).length).toBeGreaterThanOrEqual(2);
    const link = task.getByRole('link', { name: 'Result 1' });
    expect(await link.getAttribute('href')).toMatch(/\/files\/task-.*\.mp4$/);
    expect(await task.locator('.media').innerText()).toContain('expires');
    await expect.poll(() => page.getByRole('status').innerText()).toContain('completed');
    await page.screenshot({ path: `${ARTIFACTS}demo.png`, fullPage: true });
  }, 60_000);

  it("lists the key's recent tasks on load and moves them with tasksUpdated, showing the ETA and the cost", async () => {
    // Submitted before the page opens: the page learns of it only through recentTasks.
    const { data } = await stack.gql(
      `mutation { submitTask(input: { model: "veo3.1-fast", prompt: "a recent wave" }) { ... on BaseTask { id } } }`,
    );
    const id = data.submitTask.id as string;
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(`${stack.gatewayUrl}/`);
    const task = page.locator(`li#task-${id}`);
    await expect.poll(() => task.count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => task.locator('.cost').innerText()).toBe('cost ~5500');
    let eta = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline && !eta) {
      if ((await task.locator('.status').innerText()) === 'PROCESSING') eta = await task.locator('.eta').innerText();
      await page.waitForTimeout(50);
    }
    expect(eta).toMatch(/^ETA \d{1,2}:\d{2}:\d{2}/);
    await page.screenshot({ path: `${ARTIFACTS}demo-recent.png`, fullPage: true });
    await expect.poll(() => task.locator('.status').innerText(), { timeout: 20_000 }).toBe('COMPLETED');
    expect(await task.locator('.cost').innerText()).toBe('cost 5500');
    expect(await task.locator('.eta').innerText()).toBe('');
  }, 60_000);
});

describe('the demo page in jwt mode with the development identity provider', () => {
  it('switches between two signed-in users, each seeing only their own history and their viewer.limits', async () => {
    const emulator = await startEmulator({ queuedMs: 3_600_000 });
    // No UPSTREAM_URL in the config, as `npm start` with the embedded emulator: the development identity provider is served.
    const config = readConfig({ PORT: '0', HOST: '127.0.0.1', AUTH_MODE: 'jwt', USER_MAX_ACTIVE_TASKS: '2' });
    const gateway = createGateway({ config, upstreamUrl: emulator.url, logger: createLogger('silent') });
    track(() => gateway.stop());
    const url = await gateway.start();
    const browser = await launchChromium();
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(`${url}/`);
    const signedInAs = page.getByLabel('Signed in as');
    await expect.poll(() => signedInAs.isVisible()).toBe(true);
    expect(await page.getByLabel('API key (optional)').isVisible()).toBe(false);
    const limits = page.locator('#limits');
    await expect.poll(() => limits.innerText()).toBe('unfinished tasks: 0 / 2');

    const submit = async (prompt: string) => {
      const before = await page.locator('li.task').count();
      await page.getByLabel('Prompt').fill(prompt);
      await page.getByRole('button', { name: 'Submit task' }).click();
      await expect.poll(() => page.locator('li.task').count()).toBe(before + 1);
      return (await page.locator('li.task').first().getAttribute('id'))!;
    };
    const aliceTask = await submit('alice paints a fox');
    await expect.poll(() => limits.innerText()).toBe('unfinished tasks: 1 / 2');

    await signedInAs.selectOption('bob');
    await expect.poll(() => page.locator('#limits-heading').innerText()).toBe('Your limits (bob)');
    await expect.poll(() => page.locator('li.task').count()).toBe(0);
    await expect.poll(() => limits.innerText()).toBe('unfinished tasks: 0 / 2');
    const bobTasks = [await submit('bob paints a boat'), await submit('bob paints a bay')];
    await expect.poll(() => limits.innerText()).toBe('unfinished tasks: 2 / 2');
    // Bob at his limit: refused with the limit's message, nothing listed.
    await page.getByLabel('Prompt').fill('one too many');
    await page.getByRole('button', { name: 'Submit task' }).click();
    await expect.poll(() => page.getByRole('status').innerText()).toContain('USER_MAX_ACTIVE_TASKS');
    expect(await page.locator('#notice').innerText()).toContain('submit again when one ends');
    expect(await page.locator('li.task').count()).toBe(2);
    await page.screenshot({ path: `${ARTIFACTS}demo-signed-in-bob.png`, fullPage: true });

    await signedInAs.selectOption('alice');
    await expect.poll(() => page.locator('#limits-heading').innerText()).toBe('Your limits (alice)');
    await expect.poll(() => page.locator('li.task').evaluateAll((items) => items.map((item) => item.id))).toEqual([aliceTask]);
    await expect.poll(() => limits.innerText()).toBe('unfinished tasks: 1 / 2');
    expect(bobTasks).not.toContain(aliceTask);
    await page.screenshot({ path: `${ARTIFACTS}demo-signed-in-alice.png`, fullPage: true });
  }, 60_000);
});
