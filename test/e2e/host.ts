/**
 * A real VS Code host for the end-to-end tests: code-server (installed into .e2e/ by
 * scripts/e2e-setup.sh) with the built .vsix installed into a throw-away profile, or with the source
 * tree as its extension development path (what F5 does), driven through Debian's Chromium by
 * playwright-core. Everything the host writes stays under one run folder.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Frame, type Locator, type Page } from 'playwright-core';

export const REPO = resolve(__dirname, '../..');
export const HOST_DIR = join(REPO, '.e2e');
const CODE_SERVER = join(HOST_DIR, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ARTIFACTS = join(REPO, '.test-tmp', 'e2e');

/**
 * Why the tests cannot run here, or undefined. Without PATCHLENS_E2E a missing host is a skip (a
 * quick local `npm test`); with it (CI) a missing host is a failure, so CI never passes by skipping.
 */
export function skipReason(): string | undefined {
  const missing =
    !existsSync(join(HOST_DIR, '.installed')) || !existsSync(CODE_SERVER)
      ? 'the VS Code host is not installed (run scripts/e2e-setup.sh)'
      : !existsSync(CHROMIUM)
        ? `no Chromium at ${CHROMIUM}`
        : undefined;
  if (!missing) return undefined;
  if (process.env.PATCHLENS_E2E) throw new Error(`PATCHLENS_E2E is set but ${missing}`);
  return missing;
}

const t0 = Date.now();
export function step(msg: string): void {
  process.stderr.write(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
}

/** Builds the production .vsix (scripts/package.mjs), as a user would install it. */
export function buildVsix(): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  const out = join(ARTIFACTS, 'patchlens.vsix');
  execFileSync(process.execPath, [join(REPO, 'scripts', 'package.mjs'), '--out', out], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolvePort(a.port) : reject(new Error('no port'))));
    });
  });
}

export interface Host {
  readonly page: Page;
  readonly runDir: string;
  readonly workspace: string;
  readonly userSettings: string;
  readonly extensionDir: string;
  readonly consoleErrors: string[];
  close(): Promise<void>;
}

/**
 * Starts code-server on `workspace` and opens it in Chromium, with `vsix` installed, or with the
 * extension loaded from `developmentPath` (VS Code's --extensionDevelopmentPath, which code-server
 * takes from the page's `payload` parameter).
 */
export async function startHost(opts: { vsix?: string; developmentPath?: string; workspace: string; runDir: string; userSettings?: Record<string, unknown> }): Promise<Host> {
  const run = opts.runDir;
  for (const d of ['data/User', 'ext', 'home', 'tmp']) mkdirSync(join(run, d), { recursive: true });
  const userSettings = join(run, 'data', 'User', 'settings.json');
  writeFileSync(
    userSettings,
    JSON.stringify({
      'workbench.startupEditor': 'none',
      'extensions.autoUpdate': false,
      'extensions.autoCheckUpdates': false,
      'workbench.tips.enabled': false,
      'security.workspace.trust.enabled': false,
      'telemetry.telemetryLevel': 'off',
      'chat.disableAIFeatures': true,
      'workbench.colorTheme': 'Default Dark Modern',
      ...opts.userSettings,
    }),
  );
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(run, 'home'),
    XDG_DATA_HOME: join(run, 'home'),
    XDG_CACHE_HOME: join(run, 'home'),
    XDG_RUNTIME_DIR: join(run, 'tmp'),
    TMPDIR: join(run, 'tmp'),
  };
  const cs = [CODE_SERVER, '--extensions-dir', join(run, 'ext'), '--user-data-dir', join(run, 'data')];
  let extensionDir: string;
  if (opts.vsix !== undefined) {
    step('installing the .vsix into the host');
    execFileSync(process.execPath, [...cs, '--install-extension', opts.vsix], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    const extName = readdirSync(join(run, 'ext')).find((n) => n.startsWith('patchlens.patchlens-'));
    if (!extName) throw new Error(`the .vsix did not install (extensions: ${readdirSync(join(run, 'ext')).join(', ')})`);
    extensionDir = join(run, 'ext', extName);
  } else if (opts.developmentPath !== undefined) {
    extensionDir = opts.developmentPath;
  } else {
    throw new Error('startHost needs a vsix or a developmentPath');
  }

  const port = await freePort();
  const log = join(run, 'code-server.log');
  const out = (await import('node:fs')).openSync(log, 'a');
  const server: ChildProcess = spawn(
    process.execPath,
    [
      ...cs,
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      opts.workspace,
    ],
    // Its own process group, so the extension host and the engine it spawned stop with it.
    { env, stdio: ['ignore', out, out], detached: true },
  );
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (server.exitCode !== null || Date.now() > deadline) throw new Error(`code-server did not start; see ${log}:\n${readFileSync(log, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  step(`code-server listening on ${port}`);

  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    env: { ...process.env, XDG_CONFIG_HOME: join(run, 'home'), XDG_CACHE_HOME: join(run, 'home') },
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const payload =
    opts.developmentPath === undefined
      ? ''
      : `&payload=${encodeURIComponent(JSON.stringify([['extensionDevelopmentPath', `vscode-remote://127.0.0.1:${port}${opts.developmentPath}`]]))}`;
  await page.goto(`${base}/?folder=${encodeURIComponent(opts.workspace)}${payload}`, { timeout: 60_000 });
  await page.locator('.monaco-workbench .part.statusbar').waitFor({ timeout: 60_000 });
  // Menus and commands exist once the extension host has scanned the extension: its activity-bar
  // entry is the visible sign.
  await page.locator('.activitybar .action-item a[aria-label^="PatchLens"], .activitybar .action-item[aria-label^="PatchLens"]').first().waitFor({ timeout: 60_000 });
  step('workbench ready, PatchLens loaded');

  return {
    page,
    runDir: run,
    workspace: opts.workspace,
    userSettings,
    extensionDir,
    consoleErrors,
    async close() {
      await browser.close().catch(() => {});
      try {
        process.kill(-server.pid!, 'SIGTERM');
      } catch {
        /* already gone */
      }
      await new Promise((r) => setTimeout(r, 300));
      try {
        process.kill(-server.pid!, 'SIGKILL');
      } catch {
        /* stopped on SIGTERM */
      }
    },
  };
}

/** The rows of the open quick pick (or command palette). */
export function quickPickRows(page: Page): Locator {
  return page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
}

/**
 * Runs a command through the command palette (F1), matching its title exactly. Extension commands
 * appear once the extension host has registered them, so this retries until the row shows up.
 */
export async function runCommand(page: Page, title: string, timeoutMs = 60_000): Promise<void> {
  const input = page.locator('.quick-input-widget input.input');
  const rows = quickPickRows(page);
  const deadline = Date.now() + timeoutMs;
  await page.keyboard.press('Escape');
  for (;;) {
    // The title bar's search box rather than F1: a key press goes wherever the focus is, maybe a webview.
    await page.locator('.command-center .command-center-center').first().click();
    await input.waitFor({ state: 'visible', timeout: 10_000 });
    await input.fill(`>${title}`);
    await page.waitForTimeout(400);
    const labels = await rows.evaluateAll((els) => els.map((e) => ({ label: (e as HTMLElement).innerText.split('\n')[0]!.trim(), aria: e.getAttribute('aria-label') ?? '' })));
    const cut = labels.findIndex((r) => /, similar commands$/.test(r.aria));
    const index = (cut < 0 ? labels : labels.slice(0, cut)).findIndex((r) => r.label === title);
    if (index >= 0) {
      // By its aria-label, not its index: the palette may re-sort between reading the rows and the click.
      const aria = labels[index]!.aria;
      await (aria ? rows.and(page.locator(`[aria-label=${JSON.stringify(aria)}]`)).first() : rows.nth(index)).click();
      // A click that did not take leaves the palette open on the typed command; try again.
      const taken = await waitFor('the command to start', async () => ((await input.isVisible()) && (await input.inputValue()) === `>${title}` ? undefined : true), 5000).catch(
        () => false,
      );
      if (taken) return;
    }
    await page.keyboard.press('Escape');
    if (Date.now() > deadline) throw new Error(`command "${title}" is not in the palette (rows: ${JSON.stringify(labels.map((l) => l.label))})`);
    await page.waitForTimeout(1000);
  }
}

/**
 * Waits for a row of the open quick pick that contains `text`; on timeout the error names the quick
 * pick's title and the rows it shows, so a failure in CI says what was on the screen.
 */
export async function waitForQuickPickRow(page: Page, text: string | RegExp, timeoutMs = 60_000): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  const rows = quickPickRows(page);
  try {
    await rows.filter({ hasText: text }).first().waitFor({ timeout: timeoutMs });
  } catch (e) {
    const title = await widget
      .locator('.quick-input-title')
      .first()
      .innerText({ timeout: 1000 })
      .catch(() => '(no quick pick open)');
    const shown = await rows.evaluateAll((els) => els.map((el) => (el as HTMLElement).innerText.replace(/\s+/g, ' ').trim()));
    throw new Error(`no row with ${String(text)} in the quick pick "${title}" (rows: ${JSON.stringify(shown)})`, { cause: e });
  }
}

/**
 * Picks `label` in the context menu that is open. VS Code's menus ignore a click that comes too soon
 * after they open (against accidental picks), so the item is hovered first, and Enter is the fallback.
 */
export async function pickMenuItem(page: Page, label: string): Promise<void> {
  const item = page.locator('.monaco-menu .action-item', { hasText: label }).first();
  await item.waitFor();
  await page.waitForTimeout(300);
  await item.hover();
  await item.click();
  try {
    await page.locator('.monaco-menu').first().waitFor({ state: 'detached', timeout: 2000 });
  } catch {
    await item.hover();
    await page.keyboard.press('Enter');
    await page.locator('.monaco-menu').first().waitFor({ state: 'detached', timeout: 5000 });
  }
}

/**
 * Answers the method pick every run command shows before it submits (titled "PatchLens: run NAME by"):
 * clicks the row `label`, or without one accepts the row it starts on, as Enter does.
 */
export async function pickMethod(page: Page, label?: string): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  await widget
    .locator('.quick-input-title', { hasText: /^PatchLens: run .+ by( \(\d+\/\d+\))?$/ })
    .first()
    .waitFor({ timeout: 60_000 });
  const rows = quickPickRows(page);
  if (label) await rows.filter({ hasText: label }).first().click();
  else {
    await rows.first().waitFor();
    await page.keyboard.press('Enter');
  }
  await widget.waitFor({ state: 'hidden', timeout: 10_000 });
}

/** The frame (webviews are nested iframes) that contains `selector`. */
export async function frameWith(page: Page, selector: string, timeoutMs = 60_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if ((await frame.locator(selector).count()) > 0) return frame;
      } catch {
        /* detached while looking */
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no frame contains ${selector} after ${timeoutMs} ms`);
}

/** Polls `check` until it returns a value (not undefined), or fails with `what`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 60_000, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Engine processes (dist/engine/worker.js of the installed extension) by pid, read from /proc. */
export function enginePids(extensionDir: string): number[] {
  const worker = join(extensionDir, 'dist', 'engine', 'worker.js');
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.includes(worker)) pids.push(Number(p));
    } catch {
      /* exited */
    }
  }
  return pids;
}
