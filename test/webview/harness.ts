/**
 * The results panel in a real browser: the webview bundle built as the extension builds it, in the
 * page webviewHtml() makes (so under the real CSP), served from 127.0.0.1, in Debian's Chromium.
 * The one stand-in is `acquireVsCodeApi`, injected before the bundle: it records what the panel posts
 * and keeps its state, as VS Code does.
 */
import { after, before } from 'node:test';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { webviewHtml, makeNonce } from '../../src/extension/webviewHtml';
import type { HostToWebview, WebviewState, WebviewToHost } from '../../src/protocol/webviewMessages';

export const ROOT = resolve(__dirname, '../..');
export const OUT_DIR = join(ROOT, '.test-tmp/webview');
const BUILD_DIR = join(OUT_DIR, 'build');
export const CHROMIUM = '/usr/bin/chromium';

/** The same options as scripts/build.mjs's webview build, into a folder of the test's own. */
export async function buildWebview(): Promise<void> {
  await mkdir(BUILD_DIR, { recursive: true });
  await esbuild.build({
    entryPoints: { main: join(ROOT, 'webview/main.ts') },
    bundle: true,
    outdir: BUILD_DIR,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: false,
    logLevel: 'warning',
  });
}

export interface PanelServer {
  readonly origin: string;
  close(): Promise<void>;
}

/** Serves the page (a fresh nonce per request, as each VS Code panel gets one) and the built files. */
export async function servePanel(title = 'PatchLens results'): Promise<PanelServer> {
  let origin = '';
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/' || path === '/index.html') {
        const html = webviewHtml({ scriptUri: `${origin}/main.js`, styleUri: `${origin}/main.css`, cspSource: origin, nonce: makeNonce(), title });
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
        return;
      }
      if (path === '/favicon.ico') {
        res.writeHead(204).end();
        return;
      }
      const file = path === '/main.js' ? 'main.js' : path === '/main.css' ? 'main.css' : undefined;
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      const type = file.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8';
      res.writeHead(200, { 'content-type': type }).end(await readFile(join(BUILD_DIR, file)));
    })().catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { origin, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export async function launchBrowser(): Promise<Browser> {
  // npm test installs it first (scripts/test-prerequisites.mjs); a test run on its own says how.
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found; install it with: sudo apt-get install -y chromium`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

/** A CSP violation as the page reported it. */
export interface Violation {
  readonly directive: string;
  readonly blockedURI: string;
  readonly sample: string;
}

export interface Panel {
  readonly page: Page;
  readonly console: ConsoleMessage[];
  readonly errors: Error[];
  readonly dialogs: string[];
  posted(): Promise<WebviewToHost[]>;
  state(): Promise<WebviewState | undefined>;
  violations(): Promise<Violation[]>;
  send(message: HostToWebview | Record<string, unknown>): Promise<void>;
  /** Resolves with the first posted message after the first `skip` that satisfies `pred`. */
  waitForPosted<T extends WebviewToHost>(pred: (m: WebviewToHost) => m is T, skip?: number): Promise<T>;
}

/** What the injected VS Code stand-in keeps on window. */
interface Recorder {
  posted: WebviewToHost[];
  state: unknown;
  violations: Violation[];
}

/**
 * The VS Code stand-in, as source text: a function from this file would reach the page as compiled by
 * tsx, which wraps named functions in a helper (`__name`) that exists only in Node.
 */
function stubScript(saved: WebviewState | undefined): string {
  return `(() => {
    const rec = { posted: [], state: ${JSON.stringify(saved ?? null)} ?? undefined, violations: [] };
    let acquired = false;
    window.__pl = rec;
    document.addEventListener('securitypolicyviolation', (e) => {
      rec.violations.push({ directive: e.violatedDirective, blockedURI: e.blockedURI, sample: e.sample });
    });
    window.acquireVsCodeApi = () => {
      if (acquired) throw new Error('An instance of the VS Code API has already been acquired');
      acquired = true;
      return Object.freeze({
        // postMessage clones, so later changes on the page cannot alter what the host received.
        postMessage: (m) => { rec.posted.push(structuredClone(m)); },
        getState: () => rec.state,
        setState: (s) => { rec.state = structuredClone(s); return s; },
      });
    };
  })();`;
}

export async function openPanel(browser: Browser, origin: string, opts: { savedState?: WebviewState; bodyClass?: string } = {}): Promise<Panel> {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
  const consoleMessages: ConsoleMessage[] = [];
  const errors: Error[] = [];
  const dialogs: string[] = [];
  page.on('console', (m) => consoleMessages.push(m));
  page.on('pageerror', (e) => errors.push(e));
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.addInitScript(stubScript(opts.savedState));
  await page.goto(`${origin}/`);
  if (opts.bodyClass) {
    const cls = opts.bodyClass;
    await page.evaluate((c) => document.body.classList.add(c), cls);
  }
  const panel: Panel = {
    page,
    console: consoleMessages,
    errors,
    dialogs,
    posted: () => page.evaluate(() => (window as unknown as { __pl: Recorder }).__pl.posted),
    state: () => page.evaluate(() => (window as unknown as { __pl: Recorder }).__pl.state as WebviewState | undefined),
    violations: () => page.evaluate(() => (window as unknown as { __pl: Recorder }).__pl.violations),
    // As VS Code delivers a host message: a MessageEvent on the webview's window.
    send: (message) => page.evaluate((m) => window.postMessage(m, '*'), message as Record<string, unknown>),
    waitForPosted: async <T extends WebviewToHost>(pred: (m: WebviewToHost) => m is T, skip = 0): Promise<T> => {
      const until = Date.now() + 10_000;
      for (;;) {
        const found = (await panel.posted()).slice(skip).find(pred);
        if (found) return found;
        if (Date.now() > until) throw new Error('timed out waiting for a posted message');
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
  return panel;
}

/** Facet geometry as the panel exposes it on each facet element (CSS pixels, page coordinates). */
export interface FacetBox {
  readonly index: number;
  readonly title: string;
  readonly rows: number;
  readonly cols: number;
  readonly posAxis: string;
  readonly rowsArePositions: boolean;
  readonly drawnCells: number;
  readonly highlightDrawn: string;
  /** Page coordinates of the plot area (the cells). */
  readonly left: number;
  readonly top: number;
  readonly width: number;
  readonly height: number;
}

export async function facetBoxes(page: Page): Promise<FacetBox[]> {
  return page.evaluate(() =>
    Array.from(document.querySelectorAll<HTMLElement>('.pl-facet')).map((el) => {
      const d = el.dataset;
      const c = el.querySelector('canvas') as HTMLCanvasElement;
      const r = c.getBoundingClientRect();
      return {
        index: Number(d.index),
        title: d.title ?? '',
        rows: Number(d.rows),
        cols: Number(d.cols),
        posAxis: d.posAxis ?? '',
        rowsArePositions: d.rowsArePositions === 'true',
        drawnCells: Number(d.drawnCells),
        highlightDrawn: d.highlightDrawn ?? '',
        left: r.left + Number(d.plotLeft),
        top: r.top + Number(d.plotTop),
        width: Number(d.plotWidth),
        height: Number(d.plotHeight),
      };
    }),
  );
}

export function cellCentre(f: FacetBox, row: number, col: number): { x: number; y: number } {
  return { x: f.left + ((col + 0.5) * f.width) / f.cols, y: f.top + ((row + 0.5) * f.height) / f.rows };
}

/** The colour of the page's pixel at (x, y), read from the canvas under it (device pixel ratio 1). */
export async function pixelAt(page: Page, facetIndex: number, x: number, y: number): Promise<[number, number, number]> {
  return page.evaluate(
    ({ i, x, y }) => {
      const c = document.querySelectorAll<HTMLElement>('.pl-facet')[i].querySelector('canvas') as HTMLCanvasElement;
      const r = c.getBoundingClientRect();
      const s = c.width / r.width;
      const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.floor((x - r.left) * s), Math.floor((y - r.top) * s), 1, 1).data;
      return [d[0], d[1], d[2]] as [number, number, number];
    },
    { i: facetIndex, x, y },
  );
}

export function pngSize(dataUrl: string): { width: number; height: number; bytes: Buffer } {
  const bytes = Buffer.from(dataUrl.slice(dataUrl.indexOf(',') + 1), 'base64');
  const signature = bytes.subarray(0, 8).toString('hex');
  if (signature !== '89504e470d0a1a0a') throw new Error('not a PNG');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20), bytes };
}

/**
 * A test file's panel setup, as before/after hooks: the bundle built, the page served and Chromium
 * started once for the file, closed after it. `open` opens a fresh panel page on them.
 */
export function panelSuite(): { open: (opts?: Parameters<typeof openPanel>[2]) => Promise<Panel> } {
  let browser: Browser | undefined;
  let server: PanelServer | undefined;
  before(async () => {
    await mkdir(OUT_DIR, { recursive: true });
    await buildWebview();
    server = await servePanel();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });
  return { open: (opts) => openPanel(browser!, server!.origin, opts) };
}
