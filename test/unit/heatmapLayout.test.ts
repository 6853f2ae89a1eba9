import { test } from 'node:test';
import assert from 'node:assert/strict';
import { divergingColor, facetColumns, layoutSweep, symmetricRange, tokenLabel } from '../../src/presentation/heatmapLayout';
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
  const seen = new Set<number>();
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
  assert.deepEqual(f.map((x) => x.title), ['L0H0', 'L0H1', 'L0H2', 'L1H0', 'L1H1', 'L1H2']);
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
  assert.deepEqual(f.map((x) => x.title), ['resid_pre', 'attn_out', 'mlp_out']);
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
  assert.deepEqual(f.map((x) => x.title), comps);
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
  assert.deepEqual(f.map((x) => x.title), ['component 0', 'component 1']);
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

test('symmetricRange: max |v| over finite values, fixed wins, never 0', () => {
  assert.equal(symmetricRange([0.5, -2, NaN, Infinity, 1]), 2);
  assert.equal(symmetricRange([0.5, -2], 3), 3);
  assert.equal(symmetricRange([0.5, -2], -3), 3);
  assert.equal(symmetricRange([0, 0]), 1);
  assert.equal(symmetricRange([]), 1);
  assert.equal(symmetricRange([NaN]), 1);
  assert.equal(symmetricRange([0.5], 0), 0.5);
});

test('divergingColor: white at 0, red at +range, blue at -range, clamped, NaN grey', () => {
  const [r0, g0, b0] = divergingColor(0, 1);
  assert.ok(r0 >= 240 && g0 >= 240 && b0 >= 240, `0 → ${[r0, g0, b0]}`);
  const [rp, gp, bp] = divergingColor(2, 2);
  assert.ok(rp > 90 && rp > 2 * gp && rp > 2 * bp, `+range → ${[rp, gp, bp]}`);
  const [rn, gn, bn] = divergingColor(-2, 2);
  assert.ok(bn > 90 && bn > 2 * rn && bn > gn, `−range → ${[rn, gn, bn]}`);
  assert.deepEqual(divergingColor(100, 2), divergingColor(2, 2));
  assert.deepEqual(divergingColor(-Infinity, 2), divergingColor(-2, 2));
  const half = divergingColor(1, 2);
  assert.ok(half[0] > half[2], 'half range is still red-leaning');
  const [rg, gg, bg] = divergingColor(NaN, 1);
  assert.ok(rg === gg && gg === bg && rg > 100 && rg < 200, `NaN → ${[rg, gg, bg]}`);
});
