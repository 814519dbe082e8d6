/** Headless Debian chromium for the dashboard e2e (never a downloaded browser), and screenshots as artifacts. */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Where screenshots go (test-artifacts/ is git-ignored). */
export const SCREENSHOTS = join(import.meta.dirname, '../../test-artifacts/screenshots');

/** Launches /usr/bin/chromium headless (scripts/ensure-chromium.sh installs it); --no-sandbox because CI runs as root. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.DEQO_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
}

/** Saves a full-page screenshot named `name`.png. */
export async function shot(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Empties the screenshot folder (so a run's artifacts are that run's only). */
export async function clearShots(): Promise<void> {
  await rm(SCREENSHOTS, { recursive: true, force: true });
}
