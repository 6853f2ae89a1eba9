import { test } from 'node:test';
import assert from 'node:assert/strict';
import { facetColumns, labelStep, layoutSweep, placeFacets, tokenLabel } from '../../src/presentation/heatmapLayout';
import { headGroups } from '../../src/presentation/heads';
import type { Facet } from '../../src/presentation/heatmapLayout';
import type { SweepResult } from '../../src/protocol/result';

const L = 2;
const P = 4;
const H = 3;
const TOKENS = ['<|endoftext|>', 'When', ' Mary', ' and'];

/** values[i] = i, so a cell's value is its flat index and the mapping can be checked directly. */
function sweep(shape: number[], axes: string[], components?: string[]): SweepResult {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, axes, values: Array.from({ length: n }, (_, i) => i), components };
}

function flat(shape: number[], index: number[]): number {
  return index.reduce((acc, v, k) => acc * shape[k] + v, 0);
}

/** Every cell's value is the one its full index points at. */
function assertCellsConsistent(s: SweepResult, facets: Facet[]): void {
  for (const f of facets) {
    assert.equal(f.values.length, f.rowLabels.length);
    assert.equal(f.cells.length, f.rowLabels.length);
    for (let r = 0; r < f.rowLabels.length; r++) {
      assert.equal(f.values[r].length, f.colLabels.length);
      for (let c = 0; c < f.colLabels.length; c++) {
        assert.equal(f.cells[r][c].index.length, s.shape.length);
        assert.equal(f.values[r][c], s.values[flat(s.shape, f.cells[r][c].index)]);
      }
    }
  }
  // Each sweep value appears exactly once across the facets.
  const seen = new Set<number | null>();
  for (const f of facets) for (const row of f.values) for (const v of row) seen.add(v);
  assert.equal(seen.size, s.values.length);
}

const POS = ['<|endoftext|>_0', 'When_1', '␣Mary_2', '␣and_3'];

test('token labels: tok_i with visible whitespace, shortened when long', () => {
  assert.equal(tokenLabel(' Mary', 3), '␣Mary_3');
  assert.equal(tokenLabel('\n', 5), '↵_5');
  assert.equal(tokenLabel('\t\u0001', 0), '⇥\\x01_0');
  assert.equal(tokenLabel(undefined, 7), '_7');
  assert.equal(tokenLabel('a'.repeat(40), 1), 'a'.repeat(15) + '…_1');
});

test('[L, P]: rows layers, cols positions', () => {
  const s = sweep([L, P], ['layer', 'pos']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 1);
  assert.deepEqual(f[0].rowLabels, ['L0', 'L1']);
  assert.deepEqual(f[0].colLabels, POS);
  assert.equal(f[0].rowAxis, 'layer');
  assert.equal(f[0].colAxis, 'pos');
  assert.equal(f[0].posAxis, 'col');
  assert.deepEqual(f[0].cells[1][2].index, [1, 2]);
  assert.equal(f[0].values[1][2], s.values[1 * P + 2]);
  assertCellsConsistent(s, f);
});

test('[L, H]: rows layers, cols heads, no positions', () => {
  const s = sweep([L, H], ['layer', 'head']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 1);
  assert.deepEqual(f[0].rowLabels, ['L0', 'L1']);
  assert.deepEqual(f[0].colLabels, ['H0', 'H1', 'H2']);
  assert.equal(f[0].posAxis, null);
  assert.equal(f[0].values[1][2], s.values[1 * H + 2]);
  assertCellsConsistent(s, f);
});

test('[L, P, H]: rows LxHy layer-major, cols positions', () => {
  const s = sweep([L, P, H], ['layer', 'pos', 'head']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 1);
  assert.deepEqual(f[0].rowLabels, ['L0H0', 'L0H1', 'L0H2', 'L1H0', 'L1H1', 'L1H2']);
  assert.deepEqual(f[0].colLabels, POS);
  assert.equal(f[0].posAxis, 'col');
  const r = f[0].rowLabels.indexOf('L1H2');
  assert.deepEqual(f[0].cells[r][3].index, [1, 3, 2]);
  assert.equal(f[0].values[r][3], s.values[(1 * P + 3) * H + 2]);
  assertCellsConsistent(s, f);
});

test('[L, H, dest]: rows LxHy, cols dest positions', () => {
  const s = sweep([L, H, P], ['layer', 'head', 'dest_pos']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 1);
  assert.equal(f[0].rowLabels.length, L * H);
  assert.equal(f[0].rowLabels[4], 'L1H1');
  assert.deepEqual(f[0].colLabels, POS);
  assert.equal(f[0].colAxis, 'dest_pos');
  assert.equal(f[0].values[4][2], s.values[(1 * H + 1) * P + 2]);
  assertCellsConsistent(s, f);
});

test('[L, H, dest, src]: one facet per head, rows dest, cols src', () => {
  const s = sweep([L, H, P, P], ['layer', 'head', 'dest_pos', 'src_pos']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, L * H);
  assert.deepEqual(
    f.map((x) => x.title),
    ['L0H0', 'L0H1', 'L0H2', 'L1H0', 'L1H1', 'L1H2'],
  );
  const g = f[5];
  assert.deepEqual(g.rowLabels, POS);
  assert.deepEqual(g.colLabels, POS);
  assert.equal(g.rowAxis, 'dest_pos');
  assert.equal(g.colAxis, 'src_pos');
  assert.equal(g.posAxis, 'col');
  assert.equal(g.rowsArePositions, true);
  assert.deepEqual(g.cells[3][1].index, [1, 2, 3, 1]);
  assert.equal(g.values[3][1], s.values[((1 * H + 2) * P + 3) * P + 1]);
  assertCellsConsistent(s, f);
  assert.equal(facetColumns(s, f.length), H);
});

test('block_every: one [L, P] facet per component', () => {
  const s = sweep([3, L, P], ['component', 'layer', 'pos'], ['resid_pre', 'attn_out', 'mlp_out']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.deepEqual(
    f.map((x) => x.title),
    ['resid_pre', 'attn_out', 'mlp_out'],
  );
  for (const x of f) {
    assert.deepEqual(x.rowLabels, ['L0', 'L1']);
    assert.deepEqual(x.colLabels, POS);
  }
  assert.equal(f[2].values[1][3], s.values[(2 * L + 1) * P + 3]);
  assertCellsConsistent(s, f);
  assert.equal(facetColumns(s, f.length), 3);
});

test('attn_head_all_pos_every: one [L, H] facet per component', () => {
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const s = sweep([5, L, H], ['component', 'layer', 'head'], comps);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.deepEqual(
    f.map((x) => x.title),
    comps,
  );
  assert.deepEqual(f[4].colLabels, ['H0', 'H1', 'H2']);
  assert.equal(f[3].values[1][2], s.values[(3 * L + 1) * H + 2]);
  assertCellsConsistent(s, f);
});

test('attn_head_by_pos_every: one [L, P, H] facet per component', () => {
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const s = sweep([5, L, P, H], ['component', 'layer', 'pos', 'head'], comps);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 5);
  assert.equal(f[1].rowLabels[5], 'L1H2');
  assert.deepEqual(f[1].cells[5][3].index, [1, 1, 3, 2]);
  assert.equal(f[1].values[5][3], s.values[((1 * L + 1) * P + 3) * H + 2]);
  assertCellsConsistent(s, f);
});

test('components without names are numbered; missing tokens still label positions', () => {
  const s = sweep([2, L, P], ['component', 'layer', 'pos']);
  const f = layoutSweep(s, { tokens: [] });
  assert.deepEqual(
    f.map((x) => x.title),
    ['component 0', 'component 1'],
  );
  assert.deepEqual(f[0].colLabels, ['_0', '_1', '_2', '_3']);
});

test('unknown shapes still show every value', () => {
  const s = sweep([2, 3, 2], ['a', 'b', 'c']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.equal(f.length, 1);
  assert.equal(f[0].rowLabels.length, 6);
  assertCellsConsistent(s, f);
});

test('short values read as NaN rather than out of bounds', () => {
  const f = layoutSweep({ shape: [1, 2], axes: ['layer', 'pos'], values: [1] }, { tokens: TOKENS });
  assert.equal(f[0].values[0][0], 1);
  assert.ok(Number.isNaN(f[0].values[0][1]));
});

test('grouped-query heads: query heads name their KV group, k/v axes count KV heads, padding is null and unlabelled', () => {
  // 4 query heads sharing 2 KV heads: H0, H1 read KV0; H2, H3 read KV1.
  const heads = headGroups({ nHeads: 4, nKvHeads: 2 });
  assert.deepEqual(heads, { nHeads: 4, nKvHeads: 2 });
  assert.equal(headGroups({ nHeads: 4, nKvHeads: 4 }), undefined);
  assert.equal(headGroups({ nHeads: 4 }), undefined);
  assert.equal(headGroups({ nHeads: 4, nKvHeads: 3 }), undefined);

  const q = layoutSweep(sweep([L, 4], ['layer', 'head']), { tokens: TOKENS, heads });
  assert.deepEqual(q[0].colLabels, ['H0 (KV0)', 'H1 (KV0)', 'H2 (KV1)', 'H3 (KV1)']);
  const k = layoutSweep(sweep([L, P, 2], ['layer', 'pos', 'kv_head']), { tokens: TOKENS, heads });
  assert.deepEqual(k[0].rowLabels, ['L0KV0', 'L0KV1', 'L1KV0', 'L1KV1']);
  assert.equal(k[0].rowAxis, 'layer·kv_head');
  assertCellsConsistent(sweep([L, P, 2], ['layer', 'pos', 'kv_head']), k);

  // The stacked sweep keeps TransformerLens's query-head shape; key/value rows past KV1 do not exist.
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const s = sweep([5, L, 4], ['component', 'layer', 'head'], comps);
  const values = s.values.map((v, i) => ((Math.floor(i / (L * 4)) === 2 || Math.floor(i / (L * 4)) === 3) && i % 4 >= 2 ? null : v));
  const f = layoutSweep({ ...s, values }, { tokens: TOKENS, heads });
  assert.deepEqual(f[0].colLabels, ['H0 (KV0)', 'H1 (KV0)', 'H2 (KV1)', 'H3 (KV1)']);
  assert.deepEqual(f[2].colLabels, ['KV0', 'KV1', '', '']);
  assert.equal(f[2].colAxis, 'kv_head');
  assert.deepEqual(f[3].values[1], [values[(3 * L + 1) * 4], values[(3 * L + 1) * 4 + 1], null, null]);
  // Rows are layers in every facet: one set of row labels; columns are labelled under each facet.
  assert.deepEqual(
    placeFacets(f, 5).map((p) => [p.showY, p.showX]),
    [
      [true, true],
      [false, true],
      [false, true],
      [false, true],
      [false, true],
    ],
  );
  // By position, rows are heads: the key facet labels its own rows (KV heads), and the pattern facet after the value one.
  const byPos = layoutSweep(sweep([5, L, P, 4], ['component', 'layer', 'pos', 'head'], comps), { tokens: TOKENS, heads });
  assert.deepEqual(byPos[2].rowLabels, ['L0KV0', 'L0KV1', '', '', 'L1KV0', 'L1KV1', '', '']);
  assert.deepEqual(
    placeFacets(byPos, 5).map((p) => p.showY),
    [true, false, true, false, true],
  );
  // Two per row: the x labels go under the last facet of each column (columns are positions in all of them).
  assert.deepEqual(
    placeFacets(byPos, 2).map((p) => [p.showY, p.showX]),
    [
      [true, false],
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ],
  );
  // Without grouped-query heads the same sweep labels every facet alike.
  const plain = layoutSweep(s, { tokens: TOKENS });
  assert.deepEqual(plain[2].colLabels, ['H0', 'H1', 'H2', 'H3']);
});

test('placeFacets: wraps into rows; shared labels only on the outer facets', () => {
  const s = sweep([3, L, P], ['component', 'layer', 'pos'], ['resid_pre', 'attn_out', 'mlp_out']);
  const f = layoutSweep(s, { tokens: TOKENS });
  assert.deepEqual(
    placeFacets(f, 3).map((p) => [p.row, p.col, p.showY, p.showX]),
    [
      [0, 0, true, true],
      [0, 1, false, true],
      [0, 2, false, true],
    ],
  );
  // Two per row: the first facet has one below it, the second none (the last row is short).
  assert.deepEqual(
    placeFacets(f, 2).map((p) => [p.row, p.col, p.showY, p.showX]),
    [
      [0, 0, true, false],
      [0, 1, false, true],
      [1, 0, true, true],
    ],
  );
});

test('labelStep: every label when it fits in a cell, else an even subset', () => {
  assert.equal(labelStep(12, 12), 1);
  assert.equal(labelStep(6, 10), 2);
  assert.equal(labelStep(3, 10), 4);
});

test('null (an index the model lacks) stays null; NaN stays NaN', () => {
  const f = layoutSweep({ shape: [1, 3], axes: ['layer', 'pos'], values: [1, null, NaN] }, { tokens: TOKENS });
  assert.deepEqual(f[0].values[0].slice(0, 2), [1, null]);
  assert.ok(Number.isNaN(f[0].values[0][2]));
});

test('a labelled sweep lays out its label axes as the positions they stand for, named by label, not tied to a token', () => {
  const labels = ['IO', 'S1', 'S2', 'END'];
  const byLabel = { ...sweep([L, 4], ['layer', 'label']), labels };
  const [f] = layoutSweep(byLabel, { tokens: TOKENS });
  assert.deepEqual(f!.colLabels, labels);
  assert.equal(f!.colAxis, 'label');
  assert.equal(f!.posAxis, null);
  assertCellsConsistent(byLabel, [f!]);
  const every = { ...sweep([5, L, 4, H], ['component', 'layer', 'label', 'head'], ['output', 'query', 'key', 'value', 'pattern']), labels };
  const facets = layoutSweep(every, { tokens: TOKENS });
  assert.equal(facets.length, 5);
  assert.deepEqual(facets[4]!.colLabels, labels);
  assertCellsConsistent(every, facets);
  const destSrc = { ...sweep([L, H, 4, 4], ['layer', 'head', 'dest_label', 'src_label']), labels };
  const grid = layoutSweep(destSrc, { tokens: TOKENS });
  assert.equal(grid.length, L * H);
  assert.deepEqual(grid[0]!.rowLabels, labels);
  assert.equal(grid[0]!.rowsArePositions, undefined);
  assert.equal(facetColumns(destSrc, grid.length), H);
  assertCellsConsistent(destSrc, grid);
});
