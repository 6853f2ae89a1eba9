import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { cellCentre, renderSweepImage, writeSweepPngs } from '../../src/engine/render/heatmapPng';
import type { PatchResult, SweepResult } from '../../src/protocol/result';

const L = 2;
const P = 5;
const TOKENS = ['<|endoftext|>', 'When', ' Mary', ' and', ' John'];

/** Small noise everywhere, +5 at [..., 0, 1] and −5 at [..., 1, 3] of every [L, P] block. */
function lpValues(blocks: number): number[] {
  const v: number[] = [];
  for (let b = 0; b < blocks; b++) {
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < P; p++) v.push(l === 0 && p === 1 ? 5 : l === 1 && p === 3 ? -5 : 0.1 * (((l + p + b) % 3) - 1));
    }
  }
  return v;
}

function makeResult(sweeps: Record<string, SweepResult>): PatchResult {
  const prompt = { ids: [0, 1, 2, 3, 4], strings: TOKENS, ranges: TOKENS.map(() => null) };
  return {
    format: 'patchlens.result/1',
    name: 'unit-heatmap',
    status: 'done',
    createdAt: '2025-01-01T00:00:00.000Z',
    spec: { metric: 'logit_diff', sweeps: Object.keys(sweeps) } as unknown as PatchResult['spec'],
    model: {
      id: 'synthetic',
      config: { nLayers: L, nHeads: 1, dModel: 4, dHead: 4, dMlp: 16, dVocab: 10, nCtx: 8 },
      dtype: 'float32',
      provider: 'cpu',
      weightProcessing: 'none',
    },
    engine: { version: '0.0.0', mode: 'fast', seconds: 0 },
    metric: 'logit_diff',
    tokens: [{ clean: prompt, corrupted: prompt }],
    baselines: { clean: 2, corrupted: -1 },
    sweeps,
  } as PatchResult;
}

const RESID_PRE: SweepResult = { shape: [L, P], axes: ['layer', 'pos'], values: lpValues(1) };
const BLOCK_EVERY: SweepResult = {
  shape: [3, L, P],
  axes: ['component', 'layer', 'pos'],
  values: lpValues(3),
  components: ['resid_pre', 'attn_out', 'mlp_out'],
};

async function pixels(png: Buffer): Promise<{ width: number; height: number; at: (x: number, y: number) => [number, number, number] }> {
  const img = await loadImage(png);
  const c = createCanvas(img.width, img.height);
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  return {
    width: img.width,
    height: img.height,
    at: (x, y) => {
      const i = (Math.floor(y) * img.width + Math.floor(x)) * 4;
      return [data[i], data[i + 1], data[i + 2]];
    },
  };
}

const redDominant = ([r, g, b]: number[]): boolean => r > 80 && r > 2 * g && r > 2 * b;
const blueDominant = ([r, g, b]: number[]): boolean => b > 80 && b > 2 * r && b > g;

test('resid_pre: the positive cell is red, the negative one blue, the rest pale', async () => {
  const img = await renderSweepImage(makeResult({ resid_pre: RESID_PRE }), 'resid_pre');
  const px = await pixels(img.png);
  assert.equal(px.width, img.width);
  assert.equal(px.height, img.height);
  assert.ok(img.width > 150 && img.width < 1200 && img.height > 100 && img.height < 1200, `${img.width}×${img.height}`);
  // White at the corrupted baseline (-1); each side as wide as the clean baseline's distance (3) or its furthest value.
  assert.equal(img.scale.center, -1);
  assert.deepEqual([img.scale.zmin, img.scale.zmax], [-5, 5]);
  assert.equal(img.facets.length, 1);
  const g = img.facets[0];
  assert.equal(g.rows, L);
  assert.equal(g.cols, P);
  assert.ok(g.cellWidth >= 10 && g.cellHeight >= 10);
  const pos = cellCentre(g, 0, 1);
  const neg = cellCentre(g, 1, 3);
  assert.ok(redDominant(px.at(pos.x, pos.y)), `positive cell ${px.at(pos.x, pos.y)}`);
  assert.ok(blueDominant(px.at(neg.x, neg.y)), `negative cell ${px.at(neg.x, neg.y)}`);
  const other = cellCentre(g, 0, 0);
  const [r, gg, b] = px.at(other.x, other.y);
  assert.ok(r > 200 && gg > 200 && b > 200, `near-zero cell ${[r, gg, b]}`);
  // Layer 0 is the top row, as imshow draws it.
  assert.ok(cellCentre(g, 0, 0).y < cellCentre(g, 1, 0).y);
});

test('text renders: the row labels left of the plot have dark pixels', async () => {
  const img = await renderSweepImage(makeResult({ resid_pre: RESID_PRE }), 'resid_pre');
  const px = await pixels(img.png);
  const g = img.facets[0];
  let dark = 0;
  for (let x = 0; x < g.left - 2; x++) {
    for (let y = g.top; y < g.top + g.rows * g.cellHeight; y++) {
      const [r, gg, b] = px.at(x, y);
      if (r + gg + b < 300) dark++;
    }
  }
  assert.ok(dark > 20, `only ${dark} dark pixels where the labels 'L0', 'L1' should be`);
});

test('block_every: one facet per component, same colours in each', async () => {
  const result = makeResult({ block_every: BLOCK_EVERY });
  const img = await renderSweepImage(result, 'block_every');
  assert.equal(img.facets.length, 3);
  assert.deepEqual(
    img.facets.map((f) => f.title),
    ['resid_pre', 'attn_out', 'mlp_out'],
  );
  const px = await pixels(img.png);
  for (const g of img.facets) {
    const pos = cellCentre(g, 0, 1);
    const neg = cellCentre(g, 1, 3);
    assert.ok(redDominant(px.at(pos.x, pos.y)), `${g.title} positive ${px.at(pos.x, pos.y)}`);
    assert.ok(blueDominant(px.at(neg.x, neg.y)), `${g.title} negative ${px.at(neg.x, neg.y)}`);
  }
  // Side by side, no overlap.
  assert.ok(img.facets[0].left + img.facets[0].cols * img.facets[0].cellWidth <= img.facets[1].left);
  assert.equal(img.facets[0].top, img.facets[1].top);
});

test('a width cap shrinks the cells but keeps them in place', async () => {
  const img = await renderSweepImage(makeResult({ block_every: BLOCK_EVERY }), 'block_every', { width: 500, cellSize: 60, dark: true });
  assert.ok(img.width <= 500, `width ${img.width}`);
  const px = await pixels(img.png);
  for (const g of img.facets) {
    const pos = cellCentre(g, 0, 1);
    assert.ok(redDominant(px.at(pos.x, pos.y)), `${g.title} positive ${px.at(pos.x, pos.y)}`);
  }
  const [r, g, b] = px.at(2, 2);
  assert.ok(r < 60 && g < 60 && b < 60, 'dark background');
});

test('a large dest×src sweep stays within 4000 px a side', async () => {
  const [l, h, p] = [4, 4, 40];
  const n = l * h * p * p;
  const sweep: SweepResult = {
    shape: [l, h, p, p],
    axes: ['layer', 'head', 'dest_pos', 'src_pos'],
    values: Array.from({ length: n }, (_, i) => Math.sin(i)),
  };
  const img = await renderSweepImage(makeResult({ attn_head_pattern_dest_src_pos: sweep }), 'attn_head_pattern_dest_src_pos');
  assert.equal(img.facets.length, l * h);
  assert.ok(img.width <= 4000 && img.height <= 4000, `${img.width}×${img.height}`);
  // One row of facets per layer, one column per head.
  assert.equal(img.facets[1].top, img.facets[0].top);
  assert.ok(img.facets[h].top > img.facets[0].top);
});

test('writeSweepPngs writes <stem>.<sweep>.png beside <stem>.result.json for every sweep', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'patchlens-png-'));
  try {
    const paths = await writeSweepPngs(makeResult({ resid_pre: RESID_PRE, block_every: BLOCK_EVERY }), join(dir, 'unit-heatmap-2.result.json'));
    assert.deepEqual(paths, [join(dir, 'unit-heatmap-2.resid_pre.png'), join(dir, 'unit-heatmap-2.block_every.png')]);
    for (const p of paths) {
      const buf = await readFile(p);
      assert.deepEqual([...buf.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an absent sweep is an error that names it', async () => {
  await assert.rejects(renderSweepImage(makeResult({ resid_pre: RESID_PRE }), 'mlp_out'), /no sweep 'mlp_out'/);
});

test('absent cells (null) are blank, grouped-query key facets label KV heads, and the legend says how to read the colours', async () => {
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const values: (number | null)[] = Array.from({ length: 5 * L * 4 }, (_, i) => {
    const c = Math.floor(i / (L * 4));
    return (c === 2 || c === 3) && i % 4 >= 2 ? null : -1;
  });
  values[2 * L * 4 + 1] = 2; // key, L0, KV1: the clean baseline
  const base = makeResult({ attn_head_all_pos_every: { shape: [5, L, 4], axes: ['component', 'layer', 'head'], values, components: comps } });
  const result = { ...base, model: { ...base.model, config: { ...base.model.config, nHeads: 4, nKvHeads: 2 } } } as PatchResult;
  const img = await renderSweepImage(result, 'attn_head_all_pos_every');
  const px = await pixels(img.png);
  const key = img.facets[2]!;
  const c = cellCentre(key, 0, 1);
  assert.deepEqual(px.at(c.x, c.y), [103, 0, 31]);
  // Off the hairline, an absent cell is the background; an unchanged one near white but not a blank.
  for (const [row, col] of [
    [0, 2],
    [1, 3],
  ]) {
    const a = cellCentre(key, row!, col!);
    assert.deepEqual(px.at(a.x - key.cellWidth / 4, a.y - key.cellHeight / 4), [255, 255, 255], `absent cell ${row},${col}`);
  }
  const same = cellCentre(key, 0, 0);
  const [r, g, b] = px.at(same.x, same.y);
  assert.ok(r >= 240 && g >= 240 && b >= 240, `unchanged cell ${[r, g, b]}`);
  assert.match(img.scale.legend, /^White: the corrupted baseline/);
});

test('facet sizes: labels longer than a cell are drawn every few cells, evenly', async () => {
  const { facetSizes } = await import('../../src/presentation/heatmapChart');
  const all = facetSizes(12, 12, 30, () => 40);
  assert.deepEqual([all.rotate, all.xStep, all.yStep], [true, 1, 1]);
  const few = facetSizes(4, 3, 30, () => 40);
  // 9 px labels on 4 × 3 px cells: every third column, every fourth row.
  assert.deepEqual([few.xFont, few.xStep, few.yStep], [9, 3, 4]);
});
