/** The strongest-effects list and cell descriptions, with grouped-query heads and absent cells. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { colorScale } from '../../src/presentation/colorScale';
import { layoutSweep } from '../../src/presentation/heatmapLayout';
import { headGroups } from '../../src/presentation/heads';
import { describeCell } from '../../src/presentation/resultText';
import { cellName, topEffects } from '../../src/presentation/topEffects';
import type { SweepResult } from '../../src/protocol/result';

const TOKENS = ['<|endoftext|>', 'When', ' Mary', ' and', '\n'];
const B = { clean: 3, corrupted: -1 };

test('topEffects: the k cells furthest from the corrupted baseline, named and placed as the heatmap draws them', () => {
  // [L=2, P=5, H=3], all at the corrupted baseline but for four cells.
  const values = new Array<number | null>(2 * 5 * 3).fill(-1);
  const at = (l: number, p: number, h: number) => (l * 5 + p) * 3 + h;
  values[at(1, 2, 2)] = 2.68; // 92% of the way to clean
  values[at(0, 4, 1)] = -3; // worse than corrupted
  values[at(1, 0, 0)] = 0; // 25%
  values[at(0, 1, 0)] = null;
  const sweep: SweepResult = { shape: [2, 5, 3], axes: ['layer', 'pos', 'head'], values };
  const facets = layoutSweep(sweep, { tokens: TOKENS });
  const scale = colorScale({ metric: 'logit_diff', baselines: B, values });
  const top = topEffects(sweep, facets, scale, TOKENS, undefined);
  // Cells with no effect, and the absent one, are not listed.
  assert.deepEqual(
    top.map((e) => `${e.name} · ${e.amount}`),
    ['L1H2 · pos 2 "␣Mary" · 2.68 (92% of clean)', 'L0H1 · pos 4 "↵" · -3 (-50% of clean)', 'L1H0 · pos 0 "<|endoftext|>" · 0 (25% of clean)'],
  );
  // Row L1H2 of the [L·H, P] facet, column 2; hovering it lights up position 2.
  assert.deepEqual([top[0]!.facet, top[0]!.row, top[0]!.col, top[0]!.pos], [0, 5, 2, 2]);
  assert.deepEqual(top[0]!.index, [1, 2, 2]);
  assert.equal(topEffects(sweep, facets, scale, TOKENS, undefined, 1).length, 1);
});

test('topEffects on a stacked grouped-query sweep: components, KV heads, and no padding', () => {
  const heads = headGroups({ nHeads: 4, nKvHeads: 2 });
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const values: (number | null)[] = Array.from({ length: 5 * 2 * 4 }, (_, i) => {
    const c = Math.floor(i / 8);
    return (c === 2 || c === 3) && i % 4 >= 2 ? null : -1;
  });
  values[2 * 8 + 4 + 1] = 1; // key, L1, KV1
  values[0 * 8 + 3] = 3; // output, L0H3
  const sweep: SweepResult = { shape: [5, 2, 4], axes: ['component', 'layer', 'head'], values, components: comps };
  const facets = layoutSweep(sweep, { tokens: TOKENS, heads });
  const scale = colorScale({ metric: 'logit_diff', baselines: B, values });
  const top = topEffects(sweep, facets, scale, TOKENS, heads);
  assert.deepEqual(
    top.map((e) => e.name),
    ['output · L0H3 (KV1)', 'key · L1KV1'],
  );
  assert.deepEqual(
    top.map((e) => e.pos),
    [null, null],
  );
  assert.equal(
    cellName({ shape: [2, 4, 5, 5], axes: ['layer', 'head', 'dest_pos', 'src_pos'], values: [] }, [1, 2, 3, 1], TOKENS, heads),
    'L1H2 (KV1) · dest 3 "␣and" · src 1 "When"',
  );
});

test('describeCell: KV groups both ways, the fraction of clean, and "no such head"', () => {
  const heads = headGroups({ nHeads: 4, nKvHeads: 2 });
  const stacked: SweepResult = { shape: [5, 2, 4], axes: ['component', 'layer', 'head'], values: [], components: ['output', 'query', 'key', 'value', 'pattern'] };
  assert.equal(describeCell(stacked, TOKENS, [0, 1, 3], 0.5, { heads, fraction: '38% of clean' }), 'output, layer 1, head 3 (KV1): 0.5 (38% of clean)');
  assert.equal(describeCell(stacked, TOKENS, [2, 1, 1], 0.5, { heads }), 'key, layer 1, kv_head 1 (read by H2–H3): 0.5');
  assert.equal(describeCell(stacked, TOKENS, [2, 1, 3], null, { heads }), 'key, layer 1, kv_head 3: no such head (the model has 2 key/value heads)');
  const kv: SweepResult = { shape: [2, 5, 2], axes: ['layer', 'pos', 'kv_head'], values: [] };
  assert.equal(describeCell(kv, TOKENS, [0, 2, 0], -1, { heads }), 'layer 0, pos 2 (␣Mary), kv_head 0 (read by H0–H1): -1');
  assert.equal(describeCell(kv, TOKENS, [0, 2, 0], null), 'layer 0, pos 2 (␣Mary), kv_head 0: no such head');
});

test('a labelled cell is named by its label', () => {
  const s = { shape: [2, 3, 2], axes: ['layer', 'label', 'head'], values: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], labels: ['IO', 'S2', 'END'] };
  assert.equal(cellName(s, [1, 2, 0], ['a', 'b', 'c'], undefined), 'L1H0 · END');
  assert.equal(describeCell(s, ['a', 'b', 'c'], [1, 1, 0], 0.5), 'layer 1, label S2, head 0: 0.5');
});
