/**
 * The dashboard end to end, in real chromium against a real coordinator and three real agents (Docker):
 * sign in, submit a container job, watch it verify without reloading, download its verified output; a provider
 * sees what that job earned it; the code runner runs a Python script on a chosen machine. Screenshots of every
 * view go to test-artifacts/screenshots/. The page is served with its Content-Security-Policy, and nothing the
 * dashboard does in any of these steps breaks it (no violation reported on any page's console).
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, ConsoleMessage, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DeqoClient } from '../../src/client/index.js';
import type { LocalNetwork } from '../../src/cli/network.js';
import { clearShots, launchChromium, shot } from './browser.js';
import { settled, testNetwork, waitForJob } from '../helpers/network.js';

let net: LocalNetwork;
let buyer: DeqoClient;
let browser: Browser;
let buyerCtx: BrowserContext;
let page: Page;
let jobId = '';
/** Console messages of any page about the Content-Security-Policy (violations). */
const cspMessages: string[] = [];

/** A new browser context whose pages report CSP violations to cspMessages. */
async function newContext(options: Parameters<Browser['newContext']>[0]): Promise<BrowserContext> {
  const ctx = await browser.newContext(options);
  ctx.on('console', (m: ConsoleMessage) => {
    if (/content security policy/i.test(m.text())) cspMessages.push(`${m.page()?.url()}: ${m.text()}`);
  });
  return ctx;
}

beforeAll(async () => {
  ({ net, client: buyer } = await testNetwork({ agents: 3 }));
  await clearShots();
  browser = await launchChromium();
  buyerCtx = await newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await buyerCtx.newPage();
}, 240_000);
afterEach(async (ctx) => {
  // What the page showed when a step failed.
  if (ctx.task.result?.state === 'fail' && page)
    await shot(page, `failed-${ctx.task.name.slice(0, 40).replace(/\W+/g, '-')}`).catch(() => {});
});
afterAll(async () => {
  await browser?.close();
  await net?.stop();
});

describe('dashboard', () => {
  it('is served by the coordinator and refuses a wrong key next to the key field', async () => {
    const res = await page.goto(`${net.url}/`);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    expect(res?.headers()['x-frame-options']).toBe('DENY');
    const keyField = page.getByLabel('API key');
    await keyField.fill('not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('.field-error').textContent()).toMatch(/key/i);
    await shot(page, '01-sign-in');
  });

  it('signs in from the #key= fragment, keeps the key for the session only, and clears it from the address bar', async () => {
    await page.goto(`${net.url}/#key=${encodeURIComponent(net.buyerKey)}`);
    await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
    expect(page.url()).not.toContain(net.buyerKey);
    expect(await page.evaluate('sessionStorage.getItem("deqo.apiKey")')).toBe(net.buyerKey);
    expect(await page.evaluate('localStorage.length')).toBe(0);
    await expect.poll(() => page.locator('header .who').textContent()).toContain('demo-buyer');
  });

  it('submits a container job after a quote and watches it verify live, without reloading', async () => {
    await page.getByRole('link', { name: 'Submit', exact: true }).click();
    await page.getByLabel('Image').fill('deqo/busybox:test');
    await page
      .getByLabel('Command')
      .fill('sh -c "echo working; sleep 5; echo 42 > /outputs/answer.txt; echo computed the answer"');
    // A field the protocol refuses is named next to that field, and nothing is quoted.
    await page.getByLabel('Memory (MiB)').fill('4');
    await expect.poll(() => page.getByLabel('Memory (MiB)').getAttribute('aria-invalid')).toBe('true');
    expect(await page.getByRole('button', { name: /submit job|not enough/i }).isDisabled()).toBe(true);
    await page.getByLabel('Memory (MiB)').fill('128');
    await page.getByLabel('Replicas').fill('2');
    await page.getByLabel('Quorum').fill('2');
    await page.getByText('covered').waitFor();
    await shot(page, '03-submit-with-quote');
    await page.evaluate('window.__noReload = 1');
    await page.getByRole('button', { name: 'Submit job' }).click();
    await page.waitForURL(/#\/jobs\/[A-Za-z0-9_-]+$/);
    jobId = /#\/jobs\/([A-Za-z0-9_-]+)$/.exec(page.url())![1]!;
    // Seen on the page as it happens: running first, then the verdict naming the two providers that agreed.
    await page.locator('h1 .badge', { hasText: 'running' }).waitFor({ timeout: 60_000 });
    await page
      .locator('[data-verdict="0"]', { hasText: /Verified: provider-\d \+ provider-\d agreed/ })
      .waitFor({ timeout: 120_000 });
    await page.locator('h1 .badge', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    expect(await page.evaluate('window.__noReload')).toBe(1);
    const view = await waitForJob(buyer, jobId, settled);
    expect(view.state).toBe('succeeded');
    await expect.poll(() => page.locator('dt:text-is("settled") + dd').textContent(), { timeout: 60_000 }).toBe('yes');
    await shot(page, '04-job-detail');
  });

  it('downloads the verified output', async () => {
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download outputs of task 0' }).click(),
    ]);
    const dir = await mkdtemp(join(tmpdir(), 'deqo-e2e-dl-'));
    const file = join(dir, download.suggestedFilename());
    await download.saveAs(file);
    execFileSync('tar', ['-xzf', file, '-C', dir]);
    expect((await readFile(join(dir, 'answer.txt'), 'utf8')).trim()).toBe('42');
  });

  it('lists the job with its state, replicas, verification and cost, filtered by state', async () => {
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    const row = page.locator(`tr[data-job="${jobId}"]`);
    await row.waitFor();
    expect(await row.textContent()).toMatch(/succeeded.*1\/1.*2.*replicate, 2 of 2 agree.*cr/);
    await shot(page, '02-jobs');
    await page.getByLabel('State').selectOption('failed');
    await expect.poll(() => row.count()).toBe(0);
    await page.getByLabel('State').selectOption('succeeded');
    await row.waitFor();
  });

  it('shows the network: catalog with filters and sorting', async () => {
    await page.getByRole('link', { name: 'Network', exact: true }).click();
    await expect.poll(() => page.locator('tr[data-machine]').count()).toBe(3);
    await page.getByLabel('Sort by').selectOption('name');
    await page.getByLabel('Order').selectOption('desc');
    await expect.poll(() => page.locator('tr[data-machine]').first().getAttribute('data-machine')).toBe('provider-3');
    await page.getByLabel('Min CPUs').fill('64');
    await expect.poll(() => page.locator('tr[data-machine]').count()).toBe(0);
    await page.getByLabel('Min CPUs').fill('');
    await expect.poll(() => page.locator('tr[data-machine]').count()).toBe(3);
    // The charts and recent verifications load from the live routes: the job above shows, and nothing failed to load.
    await page.getByRole('heading', { name: 'Recent verifications' }).waitFor();
    await expect
      .poll(() =>
        page
          .locator('section, div')
          .filter({ hasText: /^Recent verifications/ })
          .locator('td', { hasText: 'verified' })
          .count(),
      )
      .toBeGreaterThan(0);
    expect(await page.locator('[role=alert]').allTextContents()).toEqual([]);
    await shot(page, '07-network');
  });

  it('lets a provider see what that job earned it', async () => {
    const view = await buyer.getJob(jobId);
    const paid = view.tasks[0]!.executions.find((e) => e.state === 'valid' && (e.paid ?? 0) > 0)!;
    const index = Number(/provider-(\d+)/.exec(paid.agentName)![1]) - 1;
    const ctx = await newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    await p.goto(`${net.url}/#key=${encodeURIComponent(net.providerKeys[index]!)}`);
    await p.getByRole('heading', { name: 'Provider', exact: true }).waitFor();
    const earning = p.locator(`tr[data-earning-job="${jobId}"]`);
    await earning.waitFor({ timeout: 30_000 });
    expect(await earning.textContent()).toContain(String(Number(paid.paid!.toFixed(6))));
    await p.locator(`tr[data-agent="${paid.agentName}"]`).waitFor();
    await shot(p, '06-provider');
    await ctx.close();
  });

  it('runs a Python script in the code runner on a chosen machine and shows its output', async () => {
    await page.getByRole('link', { name: 'Code runner', exact: true }).click();
    await page.locator('.cm-content').waitFor();
    await shot(page, '05-code-runner');
    await page.locator('.cm-content').click();
    await page.keyboard.press('Control+A');
    await page.keyboard.insertText('import sys\nprint("deqo-e2e", 6 * 7)\nprint("to stderr", file=sys.stderr)\n');
    const option = page.locator('select option', { hasText: 'provider-2' });
    await page.getByLabel('Machine').selectOption({ value: (await option.getAttribute('value'))! });
    await page.getByRole('button', { name: 'Run' }).click();
    await page.locator('[data-machine]', { hasText: 'provider-2' }).waitFor({ timeout: 60_000 });
    await page.locator('pre[data-stream="stdout"]', { hasText: 'deqo-e2e 42' }).waitFor({ timeout: 180_000 });
    await shot(page, '05-code-runner-output');
  });

  it('fits a phone screen and is keyboard reachable', async () => {
    const ctx = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const p = await ctx.newPage();
    await p.goto(`${net.url}/#key=${encodeURIComponent(net.buyerKey)}`);
    await p.locator(`tr[data-job="${jobId}"]`).waitFor();
    expect(await p.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await shot(p, '08-jobs-phone');
    await p.goto(`${net.url}/#/jobs/${jobId}`);
    await p.locator('[data-verdict="0"]').waitFor();
    expect(await p.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    await shot(p, '09-job-detail-phone');
    // Tab order: skip link, brand, then the nav links.
    const focused: string[] = [];
    for (let i = 0; i < 4; i++) {
      await p.keyboard.press('Tab');
      focused.push(String(await p.evaluate('document.activeElement && document.activeElement.textContent')));
    }
    expect(focused).toEqual(['Skip to content', 'Deqo', 'Jobs', 'Submit']);
    await ctx.close();
  });

  it('broke no Content-Security-Policy rule in any step above', () => {
    expect(cspMessages).toEqual([]);
  });
});
