/**
 * Patch sets in the results panel, in Chromium: a run's sets listed with their values, and "Patch
 * together" — cells clicked in any sweep's heatmap are outlined and named, and the button posts their
 * components for the host to run as one set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fractionText, sweepScale } from '../../src/presentation/colorScale';
import { exactValue } from '../../src/presentation/resultText';
import type { PatchResult } from '../../src/protocol/result';
import type { WebviewToHost } from '../../src/protocol/webviewMessages';
import { makeResult } from './fixtures';
import { cellCentre, facetBoxes, OUT_DIR, type Panel, panelSuite } from './harness';

const suite = panelSuite();

async function shown(result: PatchResult): Promise<Panel> {
  const panel = await suite.open();
  await panel.waitForPosted((m): m is Extract<WebviewToHost, { type: 'ready' }> => m.type === 'ready');
  await panel.send({ type: 'showResult', result, resultPath: '/work/.patchlens/runs/ioi.result.json' });
  await panel.page.waitForSelector('.pl-title:text("ioi-small")');
  return panel;
}

/** Clicks the cell at (row, col) of the first facet drawn. */
async function clickCell(panel: Panel, row: number, col: number): Promise<void> {
  const [f] = await facetBoxes(panel.page);
  const c = cellCentre(f!, row, col);
  await panel.page.mouse.click(c.x, c.y);
}

const selectedDrawn = (panel: Panel) => panel.page.$eval('.pl-facet', (b) => Number((b as HTMLElement).dataset.selectedCells));

test('"Patch together": cells clicked in any sweep are outlined and named; the button posts their components; pattern cells are not picked', async () => {
  const panel = await shown(makeResult());
  await panel.page.waitForSelector('.pl-facet');
  assert.equal(await panel.page.isDisabled('#pl-patch-together'), true);
  // resid_pre is [layer, pos]: rows are layers, columns positions.
  await clickCell(panel, 0, 3);
  await clickCell(panel, 1, 4);
  assert.equal(await selectedDrawn(panel), 2);
  assert.equal(await panel.page.textContent('#pl-patch-together'), 'Patch 2 together');
  assert.equal(await panel.page.textContent('#pl-selection-note'), 'L0.resid_pre@3 L1.resid_pre@4');
  // Another sweep keeps the selection; its own cells join it ([layer, head]). A second click unselects.
  await panel.page.selectOption('#pl-sweep', 'attn_head_out_all_pos');
  await panel.page.waitForSelector('.pl-facet[data-rows="2"][data-cols="3"]');
  assert.equal(await selectedDrawn(panel), 0);
  await clickCell(panel, 1, 2);
  await clickCell(panel, 0, 1);
  await clickCell(panel, 0, 1);
  assert.equal(await selectedDrawn(panel), 1);
  assert.equal(await panel.page.textContent('#pl-patch-together'), 'Patch 3 together');
  await panel.page.mouse.move(1, 1);
  await writeFile(join(OUT_DIR, 'patch-together.png'), await panel.page.screenshot({ fullPage: true }));
  // An attention-pattern entry is no component: it is refused with a note, the selection unchanged.
  await panel.page.selectOption('#pl-sweep', 'attn_head_pattern_dest_src_pos');
  await panel.page.waitForSelector('.pl-facet');
  await clickCell(panel, 2, 1);
  assert.match((await panel.page.textContent('#pl-selection-note')) ?? '', /attention-pattern cell cannot be patched/);
  assert.equal(await panel.page.textContent('#pl-patch-together'), 'Patch 3 together');
  const before = (await panel.posted()).length;
  await panel.page.click('#pl-patch-together');
  const m = await panel.waitForPosted((x): x is Extract<WebviewToHost, { type: 'patchTogether' }> => x.type === 'patchTogether', before);
  assert.deepEqual(m.components, ['L0.resid_pre@3', 'L1.resid_pre@4', 'L1H2']);
  // Back on resid_pre its two cells are outlined again; Clear empties the selection.
  await panel.page.selectOption('#pl-sweep', 'resid_pre');
  await panel.page.waitForSelector('.pl-facet[data-rows="2"][data-cols="5"]');
  assert.equal(await selectedDrawn(panel), 2);
  await panel.page.click('#pl-clear-selection');
  assert.equal(await selectedDrawn(panel), 0);
  assert.equal(await panel.page.isDisabled('#pl-patch-together'), true);
  assert.deepEqual(panel.errors.map(String), []);
  await panel.page.close();
});

test("a run's patch sets are listed with their values and share of the effect; a run of sets only shows no empty heatmap", async () => {
  const patchSets = [
    { name: 'name movers', components: ['L1H2', 'L0H1'], value: 2.51234 },
    { name: 'IO', components: ['L0.resid_pre@IO'], value: -0.3 },
  ];
  const result: PatchResult = { ...makeResult(), patchSets };
  const panel = await shown(result);
  const rows = await panel.page.$$eval('.pl-patch-set', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td'), (td) => td.textContent)));
  const scale = sweepScale(
    result,
    patchSets.map((s) => s.value),
  );
  assert.deepEqual(
    rows,
    patchSets.map((s) => [s.name, s.components.join(' '), `${exactValue(s.value)} (${fractionText(scale, s.value)})`]),
  );
  assert.match(rows[0]![2]!, /^2\.51234 \(\d+% /);
  await panel.page.close();

  const only = await shown({ ...makeResult({ sweeps: {} }), patchSets });
  await only.page.waitForSelector('#pl-patch-sets .pl-patch-set');
  assert.equal(await only.page.$eval('.pl-empty', (e) => (e as HTMLElement).hidden), true);
  assert.equal(await only.page.$eval('.pl-body', (e) => (e as HTMLElement).hidden), true);
  await writeFile(join(OUT_DIR, 'patch-sets-only.png'), await only.page.screenshot({ fullPage: true }));
  assert.deepEqual(only.errors.map(String), []);
  await only.page.close();
});
