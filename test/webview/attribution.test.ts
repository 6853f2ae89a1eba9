/**
 * An attribution run in the results panel: its estimates drawn as any sweep, the cells exact patching
 * verified marked in the heatmap, and the estimate-vs-exact scatter with the rank correlation and the
 * largest miss under it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { verificationOf } from '../../src/engine/attribution/runAttribution';
import type { PatchResult } from '../../src/protocol/result';
import { makeResult, SWEEPS } from './fixtures';
import { cellCentre, facetBoxes, OUT_DIR, panelSuite } from './harness';

const suite = panelSuite();

test('an attribution result: verified cells are marked, the scatter and its agreement are shown', async () => {
  const sweep = SWEEPS.resid_pre!;
  const values = sweep.values as number[];
  // The 3 largest estimates and 3 others, with "exact" values near them.
  const order = values
    .map((v, i) => [Math.abs(v), i] as const)
    .filter(([a]) => Number.isFinite(a))
    .sort((a, b) => b[0] - a[0])
    .map((x) => x[1]);
  const pick = [...order.slice(0, 3).map((i) => [i, 'top'] as const), ...order.slice(-3).map((i) => [i, 'random'] as const)];
  const verification = verificationOf(pick.map(([i, chosen], k) => ({ index: i, estimate: values[i]!, exact: values[i]! * (1 - 0.1 * k), chosen })));
  const base = makeResult({ sweeps: { resid_pre: { ...sweep, verification } } });
  const result: PatchResult = { ...base, attribution: { method: 'atp_star', direction: 'denoising', forwardEquivalents: 5.6, verifyForwardEquivalents: 12, verifyTop: 3 } };
  const panel = await suite.open();
  await panel.waitForPosted((m): m is Extract<typeof m, { type: 'ready' }> => m.type === 'ready');
  await panel.send({ type: 'showResult', result, resultPath: '/work/.patchlens/runs/atp.result.json' });
  await panel.page.waitForSelector('.pl-scatter');
  const marked = await panel.page.$$eval('.pl-facet', (boxes) => boxes.reduce((n, b) => n + Number((b as HTMLElement).dataset.verifiedDrawn ?? 0), 0));
  assert.equal(marked, 6, 'every verified cell is marked once');
  const text = await panel.page.textContent('#pl-attribution');
  assert.match(text ?? '', /AtP\* estimates \(denoising\)/);
  assert.match(text ?? '', new RegExp(`Spearman ρ \\(estimate vs exact, 6 cells\\): ${verification.spearman!.toFixed(3)}`));
  // The largest miss is named as the strongest-effects list names cells (resid_pre: [layer, pos]).
  const miss = verification.largestMiss!;
  const [layer, pos] = [Math.floor(miss.index / sweep.shape[1]!), miss.index % sweep.shape[1]!];
  assert.ok(text?.includes(`largest miss at L${layer} · pos ${pos} "`), text ?? '');
  assert.equal(await panel.page.textContent('.pl-effects-title'), 'Strongest estimated effects');
  // A verified cell's tooltip: the estimate, called one, and what exact patching measured.
  const top = verification.cells[0]!;
  const [f] = await facetBoxes(panel.page);
  const c = cellCentre(f!, Math.floor(top.index / sweep.shape[1]!), top.index % sweep.shape[1]!);
  await panel.page.mouse.move(c.x, c.y);
  await panel.page.waitForSelector('#pl-tooltip:not([hidden])');
  assert.match((await panel.page.textContent('#pl-tooltip')) ?? '', new RegExp(`\\(estimate\\); exact patching: ${String(top.exact).replace('.', '\\.')}$`));
  await panel.page.mouse.move(1, 1);
  await writeFile(join(OUT_DIR, 'attribution.png'), await panel.page.screenshot({ fullPage: true }));
  assert.deepEqual(panel.errors.map(String), []);
  await panel.page.close();

  // An exact run shows none of it.
  const plain = await suite.open();
  await plain.waitForPosted((m): m is Extract<typeof m, { type: 'ready' }> => m.type === 'ready');
  await plain.send({ type: 'showResult', result: makeResult(), resultPath: '/work/.patchlens/runs/x.result.json' });
  await plain.page.waitForSelector('.pl-facet');
  assert.equal(await plain.page.$eval('#pl-attribution', (e) => (e as HTMLElement).hidden), true);
  await plain.page.close();
});
