/**
 * The results panel in Chromium under its real CSP (see harness.ts): what it draws, what it posts,
 * how it treats hostile text. Screenshots land in .test-tmp/webview/.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import type { WebviewToHost } from '../../src/protocol/webviewMessages';
import { H, L, makeResult, P, SWEEPS } from './fixtures';
import { buildWebview, cellCentre, facetBoxes, launchBrowser, openPanel, OUT_DIR, pixelAt, pngSize, servePanel } from './harness';
import type { Panel, PanelServer } from './harness';

let browser: Browser;
let server: PanelServer;
const RESULT_PATH = '/work/.patchlens/runs/ioi-small.result.json';

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

type Of<T extends WebviewToHost['type']> = Extract<WebviewToHost, { type: T }>;
const is =
  <T extends WebviewToHost['type']>(type: T) =>
  (m: WebviewToHost): m is Of<T> =>
    m.type === type;

async function shownPanel(opts: Parameters<typeof openPanel>[2] = {}, result = makeResult()): Promise<Panel> {
  const panel = await openPanel(browser, server.origin, opts);
  await panel.waitForPosted(is('ready'));
  await panel.send({ type: 'showResult', result, resultPath: RESULT_PATH });
  await panel.page.waitForSelector('.pl-facet');
  return panel;
}

async function selectSweep(panel: Panel, sweep: string): Promise<void> {
  await panel.page.selectOption('#pl-sweep', sweep);
  await panel.page.waitForFunction((s) => document.getElementById('app')?.dataset.sweep === s, sweep);
}

/** Nothing went wrong on the page: no script errors, no dialogs, no CSP violation. */
async function assertClean(panel: Panel, allowedViolations = 0): Promise<void> {
  assert.deepEqual(panel.errors.map(String), []);
  assert.deepEqual(panel.dialogs, []);
  const violations = await panel.violations();
  assert.equal(violations.length, allowedViolations, JSON.stringify(violations));
  const cspConsole = panel.console.filter((m) => /Content Security Policy/i.test(m.text()));
  assert.equal(cspConsole.length, allowedViolations, cspConsole.map((m) => m.text()).join('\n'));
}

test('ready is the first message; showResult draws every sweep shape with the right facets and cells', async () => {
  const panel = await openPanel(browser, server.origin);
  await panel.waitForPosted(is('ready'));
  assert.deepEqual(await panel.posted(), [{ type: 'ready' }]);
  await panel.send({ type: 'showResult', result: makeResult(), resultPath: RESULT_PATH });
  await panel.page.waitForSelector('.pl-facet');

  // The result's sweeps in order, the first one shown, and remembered for a reload.
  const options = await panel.page.$$eval('#pl-sweep option', (os) => os.map((o) => (o as HTMLOptionElement).value));
  assert.deepEqual(options, Object.keys(SWEEPS));
  assert.deepEqual(await panel.state(), { resultPath: RESULT_PATH, sweep: 'resid_pre' });
  assert.equal(await panel.page.textContent('.pl-title'), 'ioi-small');
  const meta = (await panel.page.textContent('.pl-meta')) ?? '';
  for (const s of ['gpt2-synthetic', 'logit difference', 'clean 3.21', 'corrupted -0.419']) assert.ok(meta.includes(s), meta);

  const expected: Record<string, { facets: number; rows: number; cols: number; titles?: string[] }> = {
    resid_pre: { facets: 1, rows: L, cols: P },
    attn_head_out_all_pos: { facets: 1, rows: L, cols: H },
    attn_head_out_by_pos: { facets: 1, rows: L * H, cols: P },
    block_every: { facets: 3, rows: L, cols: P, titles: ['resid_pre', 'attn_out', 'mlp_out'] },
    attn_head_pattern_dest_src_pos: { facets: L * H, rows: P, cols: P, titles: ['L0H0', 'L0H1', 'L0H2', 'L1H0', 'L1H1', 'L1H2'] },
  };
  let posted = (await panel.posted()).length;
  for (const [sweep, e] of Object.entries(expected)) {
    if (sweep !== 'resid_pre') {
      await selectSweep(panel, sweep);
      const m = await panel.waitForPosted(is('selectSweep'), posted);
      assert.equal(m.sweep, sweep);
      posted = (await panel.posted()).length;
      assert.deepEqual(await panel.state(), { resultPath: RESULT_PATH, sweep });
    }
    const boxes = await facetBoxes(panel.page);
    assert.equal(boxes.length, e.facets, sweep);
    const root = await panel.page.$eval('.pl-facets', (el) => ({ ...(el as HTMLElement).dataset }));
    assert.equal(Number(root.facetCount), e.facets, sweep);
    assert.equal(Number(root.cellCount), e.facets * e.rows * e.cols, sweep);
    for (const b of boxes) {
      assert.equal(b.rows, e.rows, sweep);
      assert.equal(b.cols, e.cols, sweep);
      assert.equal(b.drawnCells, e.rows * e.cols, sweep);
      assert.ok(b.width >= e.cols * 6 && b.height >= e.rows * 6, `${sweep}: plot ${b.width}×${b.height}`);
    }
    if (e.titles) assert.deepEqual(boxes.map((b) => b.title), e.titles);
    // Facets of one row share their top edge; dest×src puts one layer per row, one head per column.
    if (sweep === 'attn_head_pattern_dest_src_pos') {
      assert.equal(boxes[0].top, boxes[H - 1].top);
      assert.ok(boxes[H].top > boxes[0].top + boxes[0].height);
    }
  }
  await assertClean(panel);
  await panel.page.close();
});

test('cell colours: diverging around 0, NaN grey; a fixed range recolours', async () => {
  const panel = await shownPanel();
  const [f] = await facetBoxes(panel.page);
  // resid_pre layer 1, pos 2 is NaN.
  const nan = cellCentre(f, 1, 2);
  assert.deepEqual(await pixelAt(panel.page, 0, nan.x, nan.y), [150, 150, 150]);

  await selectSweep(panel, 'block_every');
  const boxes = await facetBoxes(panel.page);
  const red = cellCentre(boxes[0], 0, 1);
  const blue = cellCentre(boxes[0], 1, 3);
  const [r1, g1, b1] = await pixelAt(panel.page, 0, red.x, red.y);
  const [r2, g2, b2] = await pixelAt(panel.page, 0, blue.x, blue.y);
  assert.ok(r1 > 80 && r1 > 2 * g1 && r1 > 2 * b1, `+1 is red: ${[r1, g1, b1]}`);
  assert.ok(b2 > 80 && b2 > 2 * r2, `−1 is blue: ${[r2, g2, b2]}`);
  assert.equal(await panel.page.getAttribute('.pl-colorbar', 'data-range'), '1');

  // A range of 10 makes ±1 pale.
  await panel.page.fill('#pl-range-value', '10');
  await panel.page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.range === '10');
  assert.equal(await panel.page.inputValue('#pl-range-mode'), 'fixed');
  const [r3, g3] = await pixelAt(panel.page, 0, red.x, red.y);
  assert.ok(r3 > 200 && g3 > 170, `+1 of ±10 is pale: ${[r3, g3]}`);
  await panel.page.selectOption('#pl-range-mode', 'auto');
  await panel.page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.range === '1');
  assert.deepEqual(await pixelAt(panel.page, 0, red.x, red.y), [r1, g1, b1]);
  await assertClean(panel);
  await panel.page.close();
});

test('hovering a position column posts its position; leaving posts null; tooltips give the exact value', async () => {
  const panel = await shownPanel();
  const { page } = panel;
  const hovers = async (): Promise<(number | null)[]> => (await panel.posted()).filter(is('hoverPosition')).map((m) => m.pos);
  const waitHover = async (pos: number | null, count: number): Promise<void> => {
    await page.waitForFunction(
      ({ pos, count }) => {
        const h = (window as unknown as { __pl: { posted: { type: string; pos?: number | null }[] } }).__pl.posted.filter((m) => m.type === 'hoverPosition');
        return h.length === count && h[count - 1].pos === pos;
      },
      { pos, count },
    );
  };

  // resid_pre: layer 1, pos 3.
  let [f] = await facetBoxes(page);
  let c = cellCentre(f, 1, 3);
  await page.mouse.move(c.x, c.y);
  await waitHover(3, 1);
  const v13 = SWEEPS.resid_pre.values[1 * P + 3];
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, pos 3 (␣and): ${String(v13)}`);
  assert.equal(await page.isVisible('#pl-tooltip'), true);
  // The NaN cell says so.
  c = cellCentre(f, 1, 2);
  await page.mouse.move(c.x, c.y);
  await waitHover(2, 2);
  assert.equal(await page.textContent('#pl-tooltip'), 'layer 1, pos 2 (␣Mary): NaN');

  // Sweeping across all five columns quickly sends far fewer messages than pointer events.
  const before = (await hovers()).length;
  const f0 = cellCentre(f, 0, 0);
  const f4 = cellCentre(f, 0, 4);
  await page.mouse.move(f0.x, f0.y);
  await page.mouse.move(f4.x, f4.y, { steps: 40 });
  await page.waitForTimeout(150);
  const sweepHovers = (await hovers()).slice(before);
  assert.ok(sweepHovers.length >= 1 && sweepHovers.length <= 12, `${sweepHovers.length} messages for 41 moves`);
  assert.equal(sweepHovers[sweepHovers.length - 1], 4);
  let count = (await hovers()).length;

  // Leaving the heatmap.
  await page.mouse.move(5, 5);
  await waitHover(null, ++count);
  assert.equal(await page.isVisible('#pl-tooltip'), false);

  // [L·H, P]: rows are layer·head, columns positions; the tooltip names all three indices.
  await selectSweep(panel, 'attn_head_out_by_pos');
  [f] = await facetBoxes(page);
  c = cellCentre(f, 1 * H + 2, 4); // L1H2, pos 4
  await page.mouse.move(c.x, c.y);
  await waitHover(4, ++count);
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, pos 4 (␣John), head 2: ${String(SWEEPS.attn_head_out_by_pos.values[(1 * P + 4) * H + 2])}`);

  // [L, H] has no position axis: hovering it is "no position".
  await selectSweep(panel, 'attn_head_out_all_pos');
  [f] = await facetBoxes(page);
  c = cellCentre(f, 1, 1);
  await page.mouse.move(c.x, c.y);
  await waitHover(null, ++count);
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, head 1: ${String(SWEEPS.attn_head_out_all_pos.values[1 * H + 1])}`);

  // dest×src: a cell means its src column; a row label means that dest position.
  await selectSweep(panel, 'attn_head_pattern_dest_src_pos');
  const boxes = await facetBoxes(page);
  const g = boxes[H + 1]; // L1H1
  c = cellCentre(g, 3, 1);
  await page.mouse.move(c.x, c.y);
  await waitHover(1, ++count);
  const idx = ((1 * H + 1) * P + 3) * P + 1;
  assert.equal(
    await page.textContent('#pl-tooltip'),
    `layer 1, head 1, dest_pos 3 (␣and), src_pos 1 (When): ${String(SWEEPS.attn_head_pattern_dest_src_pos.values[idx])}`,
  );
  const first = boxes[H]; // L1H0 carries the row labels of its grid row
  await page.mouse.move(first.left - 10, cellCentre(first, 2, 0).y);
  await waitHover(2, ++count);
  // x tick labels under the bottom row name the src positions.
  await page.mouse.move(cellCentre(first, 0, 4).x, first.top + first.height + 8);
  await waitHover(4, ++count);
  await page.mouse.move(5, 5);
  await waitHover(null, ++count);
  await assertClean(panel);
  await page.close();
});

test('highlightPosition outlines that column in every facet (and the row in dest×src); null clears it', async () => {
  const panel = await shownPanel();
  const { page } = panel;
  await selectSweep(panel, 'block_every');
  let boxes = await facetBoxes(page);
  // Just inside pos 2's left edge, in a pale cell (layer 0, pos 2 of every component is small).
  const probe = (f: (typeof boxes)[number]): { x: number; y: number } => ({ x: f.left + (2 * f.width) / f.cols + 1, y: cellCentre(f, 0, 2).y });
  const plain = await Promise.all(boxes.map((f, i) => pixelAt(page, i, probe(f).x, probe(f).y)));
  for (const px of plain) assert.ok(px[0] + px[1] + px[2] > 300, `pale cell: ${px}`);

  await panel.send({ type: 'highlightPosition', pos: 2 });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facets')?.dataset.highlight === '2');
  boxes = await facetBoxes(page);
  assert.deepEqual(boxes.map((b) => b.highlightDrawn), ['col', 'col', 'col']);
  for (let i = 0; i < boxes.length; i++) {
    const px = await pixelAt(page, i, probe(boxes[i]).x, probe(boxes[i]).y);
    assert.ok(px[0] + px[1] + px[2] < 200, `facet ${i}: outline drawn, got ${px}`);
  }
  // The highlight survives a sweep change; dest×src outlines the src column and the dest row.
  await selectSweep(panel, 'attn_head_pattern_dest_src_pos');
  boxes = await facetBoxes(page);
  assert.deepEqual(boxes.map((b) => b.highlightDrawn), new Array(L * H).fill('col row'));
  // No position axis, nothing to outline.
  await selectSweep(panel, 'attn_head_out_all_pos');
  assert.deepEqual((await facetBoxes(page)).map((b) => b.highlightDrawn), ['']);

  await selectSweep(panel, 'block_every');
  await panel.send({ type: 'highlightPosition', pos: null });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facets')?.dataset.highlight === '');
  boxes = await facetBoxes(page);
  assert.deepEqual(boxes.map((b) => b.highlightDrawn), ['', '', '']);
  for (let i = 0; i < boxes.length; i++) assert.deepEqual(await pixelAt(page, i, probe(boxes[i]).x, probe(boxes[i]).y), plain[i]);
  await assertClean(panel);
  await page.close();
});

test('Export CSV gives every cell with its exact value; Export PNG and requestPng give the picture', async () => {
  const panel = await shownPanel();
  const { page } = panel;
  await selectSweep(panel, 'block_every');
  let n = (await panel.posted()).length;
  await page.click('#pl-export-csv');
  const csv = await panel.waitForPosted(is('exportCsv'), n);
  assert.equal(csv.sweep, 'block_every');
  const s = SWEEPS.block_every;
  const lines = ['component,layer,pos,value'];
  for (let k = 0; k < 3; k++) for (let l = 0; l < L; l++) for (let p = 0; p < P; p++) lines.push(`${s.components?.[k]},${l},${p},${String(s.values[(k * L + l) * P + p])}`);
  assert.equal(csv.csv, lines.join('\n') + '\n');
  // Parsing the text back gives the same doubles, bit for bit.
  const back = csv.csv.trim().split('\n').slice(1).map((line) => Number(line.split(',')[3]));
  assert.deepEqual(back, s.values);

  await selectSweep(panel, 'resid_pre');
  n = (await panel.posted()).length;
  await page.click('#pl-export-csv');
  const csv2 = await panel.waitForPosted(is('exportCsv'), n);
  assert.ok(csv2.csv.split('\n').includes('1,2,NaN'), csv2.csv);

  // PNG from the button, with a highlight showing (which the export leaves out).
  await selectSweep(panel, 'block_every');
  await panel.send({ type: 'highlightPosition', pos: 1 });
  n = (await panel.posted()).length;
  await page.click('#pl-export-png');
  const png = await panel.waitForPosted(is('exportPng'), n);
  assert.equal(png.sweep, 'block_every');
  assert.ok(png.dataUrl.startsWith('data:image/png;base64,'));
  const size = pngSize(png.dataUrl);
  assert.ok(size.width > 400 && size.width < 4000 && size.height > 150 && size.height < 2000, `${size.width}×${size.height}`);
  await writeFile(join(OUT_DIR, 'export-block_every.png'), size.bytes);
  // The panel still shows the highlight after the export.
  assert.deepEqual((await facetBoxes(page)).map((b) => b.highlightDrawn), ['col', 'col', 'col']);

  // The host's request (from the Export Heatmap command) gets the same reply.
  await selectSweep(panel, 'attn_head_pattern_dest_src_pos');
  n = (await panel.posted()).length;
  await panel.send({ type: 'requestPng' });
  const png2 = await panel.waitForPosted(is('exportPng'), n);
  assert.equal(png2.sweep, 'attn_head_pattern_dest_src_pos');
  const size2 = pngSize(png2.dataUrl);
  assert.ok(size2.width > 300 && size2.height > 200, `${size2.width}×${size2.height}`);
  await writeFile(join(OUT_DIR, 'export-dest_src.png'), size2.bytes);
  await assertClean(panel);
  await page.close();
});

test('a reloaded panel comes back to the sweep it showed; another run starts at its first sweep', async () => {
  const panel = await openPanel(browser, server.origin, { savedState: { resultPath: RESULT_PATH, sweep: 'block_every' } });
  await panel.waitForPosted(is('ready'));
  await panel.send({ type: 'showResult', result: makeResult(), resultPath: RESULT_PATH });
  await panel.page.waitForFunction(() => document.getElementById('app')?.dataset.sweep === 'block_every');
  assert.equal(await panel.page.inputValue('#pl-sweep'), 'block_every');
  assert.equal((await facetBoxes(panel.page)).length, 3);
  // Restoring is not a choice the user made: nothing but ready was posted.
  assert.deepEqual(await panel.posted(), [{ type: 'ready' }]);

  await panel.send({ type: 'showResult', result: makeResult({ name: 'other' }), resultPath: '/elsewhere/other.result.json' });
  await panel.page.waitForFunction(() => document.getElementById('app')?.dataset.sweep === 'resid_pre');
  assert.deepEqual(await panel.state(), { resultPath: '/elsewhere/other.result.json', sweep: 'resid_pre' });
  await assertClean(panel);
  await panel.page.close();
});

test('malformed messages are ignored with a warning', async () => {
  const panel = await shownPanel();
  const { page } = panel;
  const warnings = (): string[] => panel.console.filter((m) => m.type() === 'warning').map((m) => m.text());
  const bad: Record<string, unknown>[] = [
    { type: 'explode' },
    { nottype: 1 },
    { type: 'highlightPosition', pos: -1 },
    { type: 'highlightPosition', pos: '2' },
    { type: 'showResult', resultPath: RESULT_PATH },
    { type: 'showResult', resultPath: RESULT_PATH, result: { ...makeResult(), sweeps: 'x' } },
    { type: 'showResult', resultPath: 5, result: makeResult() },
  ];
  for (const m of bad) await panel.send(m);
  await page.waitForTimeout(100);
  assert.equal(warnings().length, bad.length, warnings().join('\n'));
  // Still showing the same run, with no highlight.
  assert.equal(await page.textContent('.pl-title'), 'ioi-small');
  assert.equal(await page.getAttribute('.pl-facets', 'data-highlight'), '');

  // A result with one unreadable sweep shows the others and says what it left out.
  const broken = makeResult({ sweeps: { resid_pre: SWEEPS.resid_pre, resid_mid: { shape: [2, 5], axes: ['layer', 'pos'], values: [1, 2] } } });
  await panel.send({ type: 'showResult', result: broken, resultPath: '/x.result.json' });
  await page.waitForFunction(() => document.querySelectorAll('#pl-sweep option').length === 1);
  assert.match((await page.textContent('.pl-notices')) ?? '', /resid_mid could not be read/);
  assert.deepEqual(panel.errors.map(String), []);
  await page.close();
});

const HOSTILE = ['<img src=x onerror=alert(1)>', '</script><script>alert(2)</script>', 'javascript:alert(3)'];

test('names and tokens are text: hostile strings show verbatim and run nothing', async () => {
  const tokens = ['<|endoftext|>', ...HOSTILE, ' "quoted" & <b>bold</b>'];
  const result = makeResult({
    name: HOSTILE[0],
    tokens,
    status: 'failed',
    message: HOSTILE[1],
    sweeps: {
      resid_pre: SWEEPS.resid_pre,
      block_every: { ...SWEEPS.block_every, components: [HOSTILE[0], HOSTILE[1], HOSTILE[2]] },
    },
  });
  const panel = await shownPanel({}, { ...result, model: { ...result.model, id: HOSTILE[2] } });
  const { page } = panel;
  assert.equal(await page.textContent('.pl-title'), HOSTILE[0]);
  assert.equal(await page.title(), HOSTILE[0]);
  const meta = (await page.textContent('.pl-meta')) ?? '';
  assert.ok(meta.includes(`model: ${HOSTILE[2]}`), meta);
  assert.ok(((await page.textContent('.pl-notices')) ?? '').includes(HOSTILE[1]));

  // The hovered cell's tooltip shows the token as typed (spaces as ␣).
  const [f] = await facetBoxes(page);
  for (let p = 1; p <= 3; p++) {
    const c = cellCentre(f, 0, p);
    await page.mouse.move(c.x, c.y);
    await page.waitForFunction((t) => document.getElementById('pl-tooltip')?.textContent?.includes(t), HOSTILE[p - 1].replace(/ /g, '␣'));
  }
  await selectSweep(panel, 'block_every');
  const titles = await page.$$eval('.pl-facet-title', (els) => els.map((e) => e.textContent));
  assert.deepEqual(titles, HOSTILE);

  // Nothing was parsed as markup: the only script is ours, there are no images or links, no alert.
  const counts = await page.evaluate(() => ({
    scripts: document.scripts.length,
    imgs: document.images.length,
    links: document.querySelectorAll('a, b, iframe, object, embed').length,
  }));
  assert.deepEqual(counts, { scripts: 1, imgs: 0, links: 0 });
  await page.screenshot({ path: join(OUT_DIR, 'panel-hostile-text.png') });
  await page.waitForTimeout(200);
  await assertClean(panel);
  await page.close();
});

test('the CSP blocks inline script; the page loads with no violation of its own', async () => {
  const panel = await shownPanel();
  const { page } = panel;
  await assertClean(panel);
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true;';
    document.body.appendChild(s);
    const img = document.createElement('img');
    img.setAttribute('src', 'x');
    img.setAttribute('onerror', 'window.__handlerRan = true');
    document.body.appendChild(img);
    await new Promise((r) => setTimeout(r, 200));
    const w = window as unknown as { __inlineRan?: boolean; __handlerRan?: boolean };
    return { inline: w.__inlineRan === true, handler: w.__handlerRan === true };
  });
  assert.deepEqual(ran, { inline: false, handler: false });
  const violations = await panel.violations();
  assert.ok(violations.some((v) => v.directive.startsWith('script-src') && v.blockedURI === 'inline'), JSON.stringify(violations));
  await page.close();
});

test('screenshots in light and dark', async () => {
  for (const theme of ['light', 'dark'] as const) {
    const panel = await shownPanel({ bodyClass: `vscode-${theme}` });
    const { page } = panel;
    await selectSweep(panel, 'block_every');
    await panel.send({ type: 'highlightPosition', pos: 2 });
    await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facets')?.dataset.highlight === '2');
    const [f] = await facetBoxes(page);
    const c = cellCentre(f, 1, 3);
    await page.mouse.move(c.x, c.y);
    await page.waitForSelector('#pl-tooltip:not([hidden])');
    await page.screenshot({ path: join(OUT_DIR, `panel-${theme}.png`) });
    await selectSweep(panel, 'attn_head_pattern_dest_src_pos');
    await page.screenshot({ path: join(OUT_DIR, `panel-dest-src-${theme}.png`), fullPage: true });
    await assertClean(panel);
    await page.close();
  }
});
