/**
 * The demo's per-head PNGs, read back pixel by pixel: the constructed heads of induction-2l are the
 * most saturated red and cells that change nothing are near white. The runs are the demo's own
 * (runExperiment: the example spec, the demo's sweeps, PNGs written by the engine).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { type Done, inductionExperiments, runExperiment } from '../../src/demoRuns';
import { ModelCache } from '../../src/engine/modelLoader';
import { INDUCTION_2L } from '../../src/engine/model/builtin/induction2l';
import { cellCentre, renderSweepImage } from '../../src/engine/render/heatmapPng';
import { makeTmpDir } from '../helpers/checkpoint';

const { prevTokenHead: PREV, inductionHead: IND } = INDUCTION_2L;
const SWEEP = 'attn_head_all_pos_every';

interface Cell {
  readonly name: string;
  readonly value: number;
  readonly rgb: [number, number, number];
}

/** Every cell of the demo's attn_head_all_pos_every PNG of one experiment: its value and its centre pixel. */
async function demoCells(pattern: string, models: ModelCache): Promise<Cell[]> {
  const exp = inductionExperiments(true).find((e) => e.file === `induction-${pattern}.patch.json`)!;
  assert.deepEqual(exp.sweeps, [SWEEP]);
  const done: Done = await runExperiment(exp, { model: 'induction-2l', outDir: makeTmpDir(`demo-${pattern}`), device: 'cpu', models });
  const file = done.pngs.find((p) => p.endsWith(`.${SWEEP}.png`))!;
  const png = readFileSync(file);
  // Where the cells are: the same drawing again, which must be the file to the byte.
  const img = await renderSweepImage(done.result, SWEEP);
  assert.ok(img.png.equals(png), 'the PNG is drawn deterministically');
  const pic = await loadImage(png);
  const canvas = createCanvas(pic.width, pic.height);
  const ctx = canvas.getContext('2d');
  ctx.drawImage(pic, 0, 0);
  const sweep = done.result.sweeps[SWEEP]!;
  const [, L, H] = sweep.shape as [number, number, number];
  const cells: Cell[] = [];
  img.facets.forEach((g, c) => {
    for (let l = 0; l < L; l++) {
      for (let h = 0; h < H; h++) {
        const { x, y } = cellCentre(g, l, h);
        const d = ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data;
        cells.push({ name: `${sweep.components![c]} L${l}H${h}`, value: sweep.values[(c * L + l) * H + h] as number, rgb: [d[0]!, d[1]!, d[2]!] });
      }
    }
  });
  return cells;
}

/** How red a pixel is: 0 for white or grey, 255 for pure red. */
const redness = ([r, g, b]: readonly number[]): number => r! - (g! + b!) / 2;
const nearWhite = ([r, g, b]: readonly number[]): boolean => r! >= 235 && g! >= 230 && b! >= 225;

test("the demo's per-head PNGs: the constructed heads are the most saturated red, unchanged cells near white", { timeout: 300_000 }, async () => {
  const models = new ModelCache();
  try {
    // AB: the clean output, query or pattern of the induction head restore everything; nothing else matters
    // (the previous-token head only changes second-half keys, which no B query matches).
    const ab = await demoCells('AB', models);
    const ind = ['output', 'query', 'pattern'].map((c) => `${c} L${IND.layer}H${IND.head}`);
    const ranked = [...ab].sort((a, b) => redness(b.rgb) - redness(a.rgb));
    assert.deepEqual(
      new Set(ranked.slice(0, 3).map((c) => c.name)),
      new Set(ind),
      ranked
        .slice(0, 5)
        .map((c) => `${c.name} ${c.rgb}`)
        .join('; '),
    );
    for (const c of ranked.slice(0, 3)) assert.ok(c.rgb[0] < 140 && c.rgb[1] < 30 && c.rgb[2] < 50, `${c.name}: full red, got ${c.rgb}`);
    for (const c of ranked.slice(3)) assert.ok(nearWhite(c.rgb), `${c.name} (${c.value}) is near white, got ${c.rgb}`);

    // BB: a repeated sequence of other tokens. Here the previous-token head matters too: its clean output
    // or values make the induction head find the clean matches, restoring about two thirds.
    const bb = await demoCells('BB', models);
    const prev = `L${PREV.layer}H${PREV.head}`;
    const red = bb.filter((c) => redness(c.rgb) > 60).map((c) => c.name);
    assert.ok(red.includes(`output ${prev}`) && red.includes(`value ${prev}`), `red cells: ${red.join(', ')}`);
    assert.ok(
      red.every((n) => n.endsWith(prev) || n.endsWith(`L${IND.layer}H${IND.head}`)),
      `only the constructed heads are red: ${red.join(', ')}`,
    );
    const baseline = bb.filter((c) => !c.name.endsWith(prev) && !c.name.endsWith(`L${IND.layer}H${IND.head}`));
    assert.ok(baseline.length >= 30);
    for (const c of baseline) assert.ok(nearWhite(c.rgb), `${c.name} (${c.value}) is near white, got ${c.rgb}`);
  } finally {
    await models.release();
  }
});
