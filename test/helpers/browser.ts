import { existsSync, mkdirSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { track } from './leftovers.ts';

/** Debian's Chromium; `scripts/install-test-deps.sh` installs it. Never a downloaded browser. */
export const CHROMIUM = '/usr/bin/chromium';

/** Where browser tests leave their screenshots. */
export const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url).pathname;

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/install-test-deps.sh (apt-get install chromium) before the browser tests.`);
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  track(() => browser.close());
  return browser;
}
