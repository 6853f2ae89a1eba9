/**
 * The results panel in Chromium under its real CSP (see harness.ts): what it draws, what it posts,
 * how it treats hostile text. Screenshots land in .test-tmp/webview/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WebviewToHost } from '../../src/protocol/webviewMessages';
import type { PatchResult, SweepResult } from '../../src/protocol/result';
import { GPT2, gpt2Result, gqaResult, H, L, makeResult, P, SWEEPS, values } from './fixtures';
import { cellCentre, facetBoxes, OUT_DIR, panelSuite, pixelAt, pngSize } from './harness';
import type { Panel } from './harness';

const RESULT_PATH = '/work/.patchlens/runs/ioi-small.result.json';

const suite = panelSuite();

type Of<T extends WebviewToHost['type']> = Extract<WebviewToHost, { type: T }>;
const is =
  <T extends WebviewToHost['type']>(type: T) =>
  (m: WebviewToHost): m is Of<T> =>
    m.type === type;

async function shownPanel(opts: Parameters<typeof suite.open>[0] = {}, result = makeResult()): Promise<Panel> {
  const panel = await suite.open(opts);
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
  const panel = await suite.open();
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
    if (e.titles)
      assert.deepEqual(
        boxes.map((b) => b.title),
        e.titles,
      );
    // Facets of one row share their top edge; dest×src puts one layer per row, one head per column.
    if (sweep === 'attn_head_pattern_dest_src_pos') {
      assert.equal(boxes[0].top, boxes[H - 1].top);
      assert.ok(boxes[H].top > boxes[0].top + boxes[0].height);
    }
  }
  await assertClean(panel);
  await panel.page.close();
});

/** The tooltip's "(x% of clean)" for a value of the fixture's run, computed here from the baselines. */
const B = makeResult().baselines as { clean: number; corrupted: number };
const pct = (v: number): string => `${Math.round(((v - B.corrupted) / (B.clean - B.corrupted)) * 100)}% of clean`;
const isWhite = ([r, g, b]: number[]): boolean => r >= 240 && g >= 240 && b >= 240;

test('cell colours follow the metric: white at the corrupted baseline, full red at the clean one, NaN grey, absent cells blank', async () => {
  const values: (number | null)[] = [B.corrupted, B.clean, B.corrupted - (B.clean - B.corrupted), NaN, null, 0, 0, 0, 0, 0];
  const result = makeResult({ sweeps: { resid_pre: { shape: [2, 5], axes: ['layer', 'pos'], values } } });
  const panel = await shownPanel({}, result);
  const { page } = panel;
  const [f] = await facetBoxes(page);
  const px = async (col: number, dx = 0, dy = 0) => {
    const c = cellCentre(f, 0, col);
    return pixelAt(page, 0, c.x + dx * (f.width / f.cols), c.y + dy * (f.height / f.rows));
  };
  assert.ok(isWhite(await px(0)), `unchanged: ${await px(0)}`);
  assert.deepEqual(await px(1), [103, 0, 31]);
  assert.deepEqual(await px(2), [5, 48, 97]);
  assert.deepEqual(await px(3), [150, 150, 150]);
  // The absent cell shows the page's background (off its hairline): blank, not a colour.
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(255, 255, 255)');
  const blank = await page.evaluate(
    ({ i, x, y }) => {
      const c = document.querySelectorAll<HTMLElement>('.pl-facet')[i]!.querySelector('canvas') as HTMLCanvasElement;
      const r = c.getBoundingClientRect();
      return Array.from((c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.floor(x - r.left), Math.floor(y - r.top), 1, 1).data);
    },
    {
      i: 0,
      ...(() => {
        const c = cellCentre(f, 0, 4);
        return { x: c.x - 0.3 * (f.width / f.cols), y: c.y - 0.3 * (f.height / f.rows) };
      })(),
    },
  );
  assert.equal(blank[3], 0, `transparent, got ${blank}`);
  // The colour bar names both baselines; the legend says how to read it.
  const bar = await page.$eval('.pl-colorbar', (el) => ({ ...(el as HTMLElement).dataset }));
  assert.deepEqual(bar.labels!.split('|'), ['clean 3.21', 'corrupted -0.419', '-4.04']);
  assert.equal(Number(bar.center), B.corrupted);
  assert.match((await page.textContent('#pl-legend')) ?? '', /White: the corrupted baseline: the patch changes nothing\. Red: towards the clean baseline \(full red at 3\.21/);
  // The absent cell says so, and it is not among the strongest effects.
  const c4 = cellCentre(f, 0, 4);
  await page.mouse.move(c4.x, c4.y);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent?.endsWith('no such head'));
  assert.equal(await page.textContent('#pl-tooltip'), 'layer 0, pos 4 (␣John): no such head');
  const names = await page.$$eval('.pl-effect .pl-effect-name', (els) => els.map((e) => e.textContent));
  // Full restoration and its mirror image, equally far from the corrupted baseline.
  assert.deepEqual(new Set(names.slice(0, 2)), new Set(['L0 · pos 1 "When"', 'L0 · pos 2 "␣Mary"']));
  assert.ok(!names.some((n) => n?.startsWith('L0 · pos 4')), names.join());
  await assertClean(panel);
  await page.close();
});

test("the colour controls: the spec's plot, a choice posted for the run and restored with it, bad input refused, reset", async () => {
  const spec = { metric: 'normalized_logit_diff', sweeps: ['resid_pre'], plot: { zmin: -1, zmax: 1 } };
  const values = [0, 1, -1, 0.5, 2, 0, 0, 0, 0, 0];
  const result = { ...makeResult({ sweeps: { resid_pre: { shape: [2, 5], axes: ['layer', 'pos'], values } } }), metric: 'normalized_logit_diff', spec } as PatchResult;
  const panel = await shownPanel({}, result);
  const { page } = panel;
  const bar = async () => page.$eval('.pl-colorbar', (el) => ({ ...(el as HTMLElement).dataset }));
  // The spec's settings: the notebook's zmin -1, zmax 1. The 2 is clipped, and the panel says so.
  assert.deepEqual(
    [await page.inputValue('#pl-center'), await page.inputValue('#pl-zmin'), await page.inputValue('#pl-zmin-value'), await page.inputValue('#pl-zmax-value')],
    ['auto', 'number', '-1', '1'],
  );
  assert.deepEqual([(await bar()).zmin, (await bar()).zmax], ['-1', '1']);
  assert.match((await page.textContent('#pl-legend')) ?? '', /1 cell lie beyond the colour range: 1 above 1 \(highest 2\)/);
  assert.equal((await bar()).labels!.split('|')[0], 'clean 1');
  const [f] = await facetBoxes(page);
  const at = async (col: number) => pixelAt(page, 0, cellCentre(f, 0, col).x, cellCentre(f, 0, col).y);
  const half = await at(3);

  // A wider upper end: posted for the run (the host keeps it), 0.5 paler.
  let n = (await panel.posted()).length;
  await page.fill('#pl-zmax-value', '2');
  const chosen = await panel.waitForPosted(is('plotChoice'), n);
  assert.deepEqual(chosen.plot, { zmin: -1, zmax: 2 });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.zmax === '2');
  const paler = await at(3);
  assert.ok(paler[1] > half[1], `0.5 of ±2 is paler than of ±1: ${paler} vs ${half}`);
  // Baselines by name.
  n = (await panel.posted()).length;
  await page.selectOption('#pl-zmax', 'clean');
  assert.deepEqual((await panel.waitForPosted(is('plotChoice'), n)).plot, { zmin: -1, zmax: 'clean' });
  // Back to a number: the one typed before.
  n = (await panel.posted()).length;
  await page.selectOption('#pl-zmax', 'number');
  assert.equal(await page.inputValue('#pl-zmax-value'), '2');
  assert.deepEqual((await panel.waitForPosted(is('plotChoice'), n)).plot, { zmin: -1, zmax: 2 });
  // A lower end above the upper one is refused, said, and nothing changes.
  n = (await panel.posted()).length;
  await page.fill('#pl-zmin-value', '3');
  await page.waitForFunction(() => document.getElementById('pl-zmin-value')?.getAttribute('aria-invalid') === 'true');
  assert.equal(await page.textContent('#pl-plot-status'), 'Not applied: plot.zmin (3) must be below plot.zmax (2); swap them.');
  await page.waitForTimeout(100);
  assert.equal((await panel.posted()).slice(n).filter(is('plotChoice')).length, 0);
  assert.equal((await bar()).zmin, '-1');

  // Reset: back to the spec's settings, and the host forgets the choice.
  n = (await panel.posted()).length;
  await page.click('#pl-plot-reset');
  assert.deepEqual((await panel.waitForPosted(is('plotChoice'), n)).plot, null);
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.zmax === '1');
  assert.equal(await page.inputValue('#pl-zmin-value'), '-1');
  assert.equal(await page.getAttribute('#pl-zmin-value', 'aria-invalid'), null);

  // The host shows the run again with the choice it kept for it: the panel comes back to that scale.
  await panel.send({ type: 'showResult', result, resultPath: RESULT_PATH, plot: { center: 'zero', zmin: 'corrupted', zmax: 2 } });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.zmax === '2');
  assert.deepEqual([await page.inputValue('#pl-center'), await page.inputValue('#pl-zmin'), await page.inputValue('#pl-zmax-value')], ['zero', 'corrupted', '2']);
  assert.equal((await bar()).zmin, '0');
  // Another run without a kept choice shows its own spec's settings (none: the metric's defaults).
  await panel.send({ type: 'showResult', result: makeResult({ name: 'other' }), resultPath: '/elsewhere/other.result.json' });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-colorbar')?.dataset.center === String(-0.4187));
  assert.deepEqual([await page.inputValue('#pl-center'), await page.inputValue('#pl-zmin'), await page.inputValue('#pl-zmax')], ['auto', 'auto', 'auto']);
  await assertClean(panel);
  await page.close();
});

/** How the page scrolls and where the cells are, at the panel's current size. */
async function layout(page: Panel['page']) {
  return page.evaluate(() => {
    const plot = document.querySelector('.pl-plot') as HTMLElement;
    const root = document.querySelector('.pl-facets') as HTMLElement;
    return {
      innerWidth: window.innerWidth,
      innerHeight: window.innerHeight,
      pageHeight: document.documentElement.scrollHeight,
      plotScrollWidth: plot.scrollWidth,
      plotClientWidth: plot.clientWidth,
      gridCols: Number(root.dataset.gridCols),
      beside: document.querySelector('.pl-body')!.classList.contains('pl-body-beside'),
    };
  });
}

test('at 1000 px a 12 × 47 sweep fills the width with cells of at least 12 px, every column labelled; resizing relayouts', async () => {
  const panel = await shownPanel({}, gpt2Result());
  const { page } = panel;
  await page.setViewportSize({ width: 1000, height: 800 });
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.pl-facet')?.dataset.plotWidth) > 600);
  let [f] = await facetBoxes(page);
  assert.deepEqual([f.rows, f.cols], [GPT2.L, GPT2.P]);
  assert.ok(f.width >= 0.7 * 1000, `the heatmap spans ${f.width} px of 1000`);
  assert.ok(f.width / f.cols >= 12 && f.height / f.rows >= 12, `cells ${f.width / f.cols} × ${f.height / f.rows}`);
  // Every column has its label drawn under it: dark pixels in the label band below each column.
  const labelled = await page.evaluate(
    ({ top, left, width, cols }) => {
      const c = document.querySelector<HTMLElement>('.pl-facet')!.querySelector('canvas') as HTMLCanvasElement;
      const r = c.getBoundingClientRect();
      const ctx = c.getContext('2d') as CanvasRenderingContext2D;
      const cw = width / cols;
      return Array.from({ length: cols }, (_, i) => {
        const d = ctx.getImageData(Math.floor(left - r.left + i * cw + 1), Math.floor(top - r.top + 4), Math.max(1, Math.floor(cw - 2)), 40).data;
        let ink = 0;
        for (let k = 0; k < d.length; k += 4) if (d[k + 3]! > 0 && d[k]! < 128) ink++;
        return ink;
      });
    },
    { top: f.top + f.height, left: f.left, width: f.width, cols: f.cols },
  );
  assert.ok(
    labelled.every((ink) => ink > 5),
    `columns without a label: ${labelled
      .map((ink, i) => (ink > 5 ? '' : i))
      .filter((x) => x !== '')
      .join(', ')}`,
  );
  assert.equal(await page.getAttribute('.pl-facet', 'data-x-step'), '1');
  // A label shortened or not, its full text on hover.
  await page.mouse.move(cellCentre(f, 0, 1).x, f.top + f.height + 10);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent === 'pos 1 (␣When)');

  // Narrower: cells shrink but not below 12 px; the page relayouts by itself.
  await page.setViewportSize({ width: 700, height: 800 });
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.pl-facet')?.dataset.plotWidth) < 600);
  [f] = await facetBoxes(page);
  assert.ok(f.width / f.cols >= 12, `cells ${f.width / f.cols}`);
  let l = await layout(page);
  assert.ok(l.plotScrollWidth <= l.plotClientWidth + 1 || f.width / f.cols === 12, JSON.stringify(l));
  // Three facets of 47 columns cannot sit side by side at 1000 px: they wrap, one per row; wide, they share a row.
  await page.setViewportSize({ width: 1000, height: 800 });
  await selectSweep(panel, 'block_every');
  l = await layout(page);
  assert.equal(l.gridCols, 1);
  const boxes = await facetBoxes(page);
  assert.ok(boxes[1]!.top > boxes[0]!.top + boxes[0]!.height && boxes.every((b) => b.width / b.cols >= 12));
  await page.setViewportSize({ width: 2400, height: 800 });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facets')?.dataset.gridCols === '3');
  const wide = await facetBoxes(page);
  assert.equal(wide[0]!.top, wide[2]!.top);
  await assertClean(panel);
  await page.close();
});

test('at 1000 px a 12 × 12 × 47 by-position sweep scrolls instead of shrinking its cells below 12 px', async () => {
  const panel = await shownPanel({}, gpt2Result());
  const { page } = panel;
  await page.setViewportSize({ width: 1000, height: 800 });
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.pl-facet')?.dataset.plotWidth) < 47 * 18);
  await selectSweep(panel, 'attn_head_out_by_pos');
  const [f] = await facetBoxes(page);
  assert.deepEqual([f.rows, f.cols], [GPT2.L * GPT2.H, GPT2.P]);
  assert.ok(f.width / f.cols >= 12 && f.height / f.rows >= 12, `cells ${f.width / f.cols} × ${f.height / f.rows}`);
  const l = await layout(page);
  assert.ok(l.pageHeight > 2 * l.innerHeight, `the page scrolls: ${l.pageHeight} px in a ${l.innerHeight} px window`);
  // Too many positions for the width: the plot scrolls sideways, cells stay 12 px.
  const wideResult = makeResult({ sweeps: { resid_pre: { shape: [2, 120], axes: ['layer', 'pos'], values: Array.from({ length: 240 }, (_, i) => Math.sin(i)) } } });
  await panel.send({ type: 'showResult', result: wideResult, resultPath: '/x/wide.result.json' });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facet')?.dataset.cols === '120');
  const [w] = await facetBoxes(page);
  assert.equal(w.width / w.cols, 12);
  const lw = await layout(page);
  assert.ok(lw.plotScrollWidth > lw.plotClientWidth + 100, JSON.stringify(lw));
  await assertClean(panel);
  await page.close();
});

test('the strongest effects: listed with their share of clean; pointing at one outlines its cell and its token, as the heatmap does', async () => {
  const panel = await shownPanel({}, gpt2Result());
  const { page } = panel;
  await page.setViewportSize({ width: 1000, height: 800 });
  // Laid out again for 1000 px (from the harness's 1100): wait for it, or it would redraw under the pointer.
  await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.pl-facet')?.dataset.plotWidth) < 47 * 18);
  const entries = await page.$$eval('.pl-effect', (els) => els.map((e) => ({ text: e.textContent, ...(e as HTMLElement).dataset }) as Record<string, string | null | undefined>));
  assert.equal(entries.length, 10);
  assert.equal(entries[0]!.text, 'L3 · pos 40 "↵"3.4 (90% of clean)');
  assert.deepEqual([entries[0]!.facet, entries[0]!.row, entries[0]!.col, entries[0]!.pos], ['0', '3', '40', '40']);
  assert.match((await page.textContent('.pl-effects-note')) ?? '', /^The 10 cells furthest from the corrupted baseline \(-2\)\.$/);

  // Pointing at the entry: its cell is outlined and its token lit in the source (hoverPosition), as hovering the cell does.
  let n = (await panel.posted()).filter(is('hoverPosition')).length;
  await page.hover('.pl-effect >> nth=0');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facet')?.dataset.hoverCell === '3,40');
  await page.waitForFunction(
    (k) => (window as unknown as { __pl: { posted: { type: string; pos?: number }[] } }).__pl.posted.filter((m) => m.type === 'hoverPosition').length > k,
    n,
  );
  const last = (await panel.posted()).filter(is('hoverPosition')).pop();
  assert.equal(last?.pos, 40);
  const [f] = await facetBoxes(page);
  const corner = { x: f.left + (40 * f.width) / f.cols + 1, y: f.top + (3 * f.height) / f.rows + 1 };
  const outlined = await pixelAt(page, 0, corner.x, corner.y);
  assert.ok(outlined[0] + outlined[1] + outlined[2] < 300, `the cell's outline: ${outlined}`);
  // Hovering that cell in the heatmap sends the same position.
  await page.mouse.move(cellCentre(f, 3, 40).x, cellCentre(f, 3, 40).y);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent?.includes('(90% of clean)'));
  assert.equal((await panel.posted()).filter(is('hoverPosition')).pop()?.pos, 40);
  await page.mouse.move(5, 5);

  // By position, the strongest cell is in the last row, far below the fold: choosing it scrolls it into view.
  await selectSweep(panel, 'attn_head_out_by_pos');
  await page.evaluate(() => window.scrollTo(0, 0));
  const first = await page.$eval('.pl-effect', (e) => ({ text: e.textContent, ...(e as HTMLElement).dataset }));
  assert.equal(first.text, 'L11H5 · pos 46 "␣to"4 (100% of clean)');
  n = (await panel.posted()).length;
  await page.focus('.pl-effect >> nth=0');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facet')?.dataset.hoverCell === `${11 * 12 + 5},46`);
  const cell = cellCentre((await facetBoxes(page))[0]!, 11 * 12 + 5, 46);
  assert.ok(cell.y > 0 && cell.y < 800, `the chosen cell is in view at y = ${cell.y}`);
  await panel.waitForPosted((m): m is Of<'hoverPosition'> => m.type === 'hoverPosition' && m.pos === 46, n);
  await assertClean(panel);
  await page.close();
});

test('grouped-query heads: KV groups in the labels and tooltips, absent heads blank and said so', async () => {
  const panel = await shownPanel({}, gqaResult());
  const { page } = panel;
  const boxes = await facetBoxes(page);
  assert.deepEqual(
    boxes.map((b) => b.title),
    ['output', 'query', 'key', 'value', 'pattern'],
  );
  const tip = async (facet: number, row: number, col: number, want: string) => {
    const c = cellCentre(boxes[facet]!, row, col);
    await page.mouse.move(c.x, c.y);
    await page.waitForFunction((t) => document.getElementById('pl-tooltip')?.textContent?.startsWith(t), want);
  };
  await tip(0, 1, 3, 'output, layer 1, head 3 (KV1): ');
  await tip(2, 1, 1, 'key, layer 1, kv_head 1 (read by H2–H3): 0.8');
  await tip(3, 0, 3, 'value, layer 0, kv_head 3: no such head (the model has 2 key/value heads)');
  // The key facet's column labels count KV heads; the query facet's name each head's group.
  const key = boxes[2]!;
  await page.mouse.move(cellCentre(key, 0, 1).x, key.top + key.height + 8);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent === 'kv_head KV1');
  await page.mouse.move(cellCentre(key, 0, 3).x, key.top + key.height + 8);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent === 'kv_head 3: no such head');
  const q = boxes[1]!;
  await page.mouse.move(cellCentre(q, 0, 2).x, q.top + q.height + 8);
  await page.waitForFunction(() => document.getElementById('pl-tooltip')?.textContent === 'head H2 (KV1)');
  const names = await page.$$eval('.pl-effect .pl-effect-name', (els) => els.map((e) => e.textContent));
  assert.equal(names[0], 'key · L1KV1');
  // The simple k sweep's axis is kv_head.
  await selectSweep(panel, 'attn_head_k_all_pos');
  const [k] = await facetBoxes(page);
  await tip(0, 1, 0, 'layer 1, kv_head 0 (read by H0–H1): 0.3');
  assert.equal(k.cols, 2);
  await assertClean(panel);
  await page.close();
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
  const v13 = SWEEPS.resid_pre.values[1 * P + 3] as number;
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, pos 3 (␣and): ${String(v13)} (${pct(v13)})`);
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
  const v14 = SWEEPS.attn_head_out_by_pos.values[(1 * P + 4) * H + 2] as number;
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, pos 4 (␣John), head 2: ${String(v14)} (${pct(v14)})`);

  // [L, H] has no position axis: hovering it is "no position".
  await selectSweep(panel, 'attn_head_out_all_pos');
  [f] = await facetBoxes(page);
  c = cellCentre(f, 1, 1);
  await page.mouse.move(c.x, c.y);
  await waitHover(null, ++count);
  const v11 = SWEEPS.attn_head_out_all_pos.values[1 * H + 1] as number;
  assert.equal(await page.textContent('#pl-tooltip'), `layer 1, head 1: ${String(v11)} (${pct(v11)})`);

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
    `layer 1, head 1, dest_pos 3 (␣and), src_pos 1 (When): ${String(SWEEPS.attn_head_pattern_dest_src_pos.values[idx])} (${pct(SWEEPS.attn_head_pattern_dest_src_pos.values[idx] as number)})`,
  );
  const first = boxes[H]; // L1H0 carries the row labels of its grid row
  await page.mouse.move(first.left - 10, cellCentre(first, 2, 0).y);
  await waitHover(2, ++count);
  // x tick labels under the bottom row name the src positions.
  await page.mouse.move(cellCentre(first, 0, 4).x, first.top + first.height + 8);
  await waitHover(4, ++count);
  await page.mouse.move(5, 5);
  await waitHover(null, count + 1);
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
  assert.deepEqual(
    boxes.map((b) => b.highlightDrawn),
    ['col', 'col', 'col'],
  );
  for (let i = 0; i < boxes.length; i++) {
    const px = await pixelAt(page, i, probe(boxes[i]).x, probe(boxes[i]).y);
    assert.ok(px[0] + px[1] + px[2] < 200, `facet ${i}: outline drawn, got ${px}`);
  }
  // The highlight survives a sweep change; dest×src outlines the src column and the dest row.
  await selectSweep(panel, 'attn_head_pattern_dest_src_pos');
  boxes = await facetBoxes(page);
  assert.deepEqual(
    boxes.map((b) => b.highlightDrawn),
    new Array(L * H).fill('col row'),
  );
  // No position axis, nothing to outline.
  await selectSweep(panel, 'attn_head_out_all_pos');
  assert.deepEqual(
    (await facetBoxes(page)).map((b) => b.highlightDrawn),
    [''],
  );

  await selectSweep(panel, 'block_every');
  await panel.send({ type: 'highlightPosition', pos: null });
  await page.waitForFunction(() => document.querySelector<HTMLElement>('.pl-facets')?.dataset.highlight === '');
  boxes = await facetBoxes(page);
  assert.deepEqual(
    boxes.map((b) => b.highlightDrawn),
    ['', '', ''],
  );
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
  const back = csv.csv
    .trim()
    .split('\n')
    .slice(1)
    .map((line) => Number(line.split(',')[3]));
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
  assert.deepEqual(
    (await facetBoxes(page)).map((b) => b.highlightDrawn),
    ['col', 'col', 'col'],
  );

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
  const panel = await suite.open({ savedState: { resultPath: RESULT_PATH, sweep: 'block_every' } });
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
  assert.ok(
    violations.some((v) => v.directive.startsWith('script-src') && v.blockedURI === 'inline'),
    JSON.stringify(violations),
  );
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
    // GPT-2 small's shapes at 1000 px, and a grouped-query model.
    await page.setViewportSize({ width: 1000, height: 800 });
    await panel.send({ type: 'showResult', result: gpt2Result(), resultPath: '/x/gpt2.result.json' });
    await page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'gpt2-shaped');
    await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.pl-facet')?.dataset.plotWidth) < 47 * 18);
    await page.hover('.pl-effect >> nth=0');
    await page.screenshot({ path: join(OUT_DIR, `panel-gpt2-${theme}.png`), fullPage: true });
    await selectSweep(panel, 'attn_head_out_by_pos');
    await page.screenshot({ path: join(OUT_DIR, `panel-gpt2-by-pos-${theme}.png`) });
    await panel.send({ type: 'showResult', result: gqaResult(), resultPath: '/x/gqa.result.json' });
    await page.waitForFunction(() => document.querySelector('.pl-title')?.textContent === 'gqa');
    await page.screenshot({ path: join(OUT_DIR, `panel-gqa-${theme}.png`), fullPage: true });
    await assertClean(panel);
    await page.close();
  }
});

test('path patching: listed with what it was measured through and its sender set, drawn as [layer, head], exported under its own name', async () => {
  const path: SweepResult = { shape: [1, H], axes: ['layer', 'head'], values: values(H, 9), receivers: ['L1H0.q', 'L1H2.k'], senderSet: { senders: ['L0H1', 'L0H2'], value: 0.5 } };
  const panel = await shownPanel({}, makeResult({ sweeps: { resid_pre: SWEEPS.resid_pre!, path_patching: path } }));
  const options = await panel.page.$$eval('#pl-sweep option', (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]));
  assert.deepEqual(options, [
    ['resid_pre', 'resid_pre'],
    ['path_patching', 'path_patching → L1H0.q, L1H2.k; L0H1 + L0H2 together: 0.5'],
  ]);
  await selectSweep(panel, 'path_patching');
  const [box] = await facetBoxes(panel.page);
  assert.deepEqual([box!.rows, box!.cols, box!.drawnCells], [1, H, H]);
  await panel.page.click('#pl-export-png');
  const png = await panel.waitForPosted(is('exportPng'));
  assert.equal(png.sweep, 'path_patching');
  await panel.page.screenshot({ path: join(OUT_DIR, 'panel-path-patching.png') });
  await assertClean(panel);
});
