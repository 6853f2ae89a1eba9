/**
 * AtP* on the built-in induction-2l, whose previous-token head (L0H1) and induction head (L1H2) are
 * constructed, not trained: the per-head sweeps must rank those two first, and exact patching of the
 * top-ranked cells (verify_top) must confirm that they carry the effect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { UserError } from '../../src/common/userError';
import { join } from 'node:path';
import { runAttribution } from '../../src/engine/attribution/runAttribution';
import { INDUCTION_2L } from '../../src/engine/model/builtin/induction2l';
import { builtinModelDir } from '../../src/engine/model/builtinModels';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import { ModelCache } from '../../src/engine/modelLoader';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { runSpec } from '../../src/engine/runSpec';
import type { PatchResult } from '../../src/protocol/result';
import { parseSpecText } from '../../src/spec/parseSpec';
import { makeTmpDir } from '../helpers/checkpoint';
import { loadTestModel } from '../helpers/models';

test('induction-2l: AtP* ranks the constructed heads first in the per-head sweeps, and exact patching confirms them', async () => {
  const cacheDir = makeTmpDir('induction-2l-atp');
  try {
    const dir = builtinModelDir('induction-2l', cacheDir);
    const m = await loadTestModel(dir);
    const tok = await loadTokenizer(dir, m.cfg);
    const file = join(__dirname, '../../examples/induction-AB.patch.json');
    const text = readFileSync(file, 'utf8');
    const spec = { ...resolveSpec(parseSpecText(text, file), tok, m.cfg, { file, text }), sweeps: ['attn_head_out_all_pos', 'attn_head_all_pos_every'] as const };
    const out = await runAttribution(m.model, { ...spec, sweeps: [...spec.sweeps], method: 'atp_star', verifyTop: 2 });
    const H = INDUCTION_2L.nHeads;
    const constructed = new Set([INDUCTION_2L.prevTokenHead, INDUCTION_2L.inductionHead].map((h) => h.layer * H + h.head));
    const base = out.baselines.corrupted!;

    const heads = out.sweeps.attn_head_out_all_pos!;
    const ranked = heads.score!.map((s, i) => [s!, i] as const).sort((a, b) => b[0] - a[0]);
    assert.deepEqual(new Set(ranked.slice(0, 2).map((r) => r[1])), constructed, `ranking ${JSON.stringify(ranked)}`);
    assert.ok(ranked[1]![0] > 0 && ranked.slice(2).every((r) => r[0] < ranked[1]![0]), 'and strictly above every other head');
    const ver = heads.verification!;
    const effect = (c: { exact: number }) => Math.abs(c.exact - base);
    const top = ver.cells.filter((c) => c.chosen === 'top');
    assert.deepEqual(new Set(top.map((c) => c.index)), constructed, 'the two checked first are the constructed heads');
    const strongest = Math.max(...ver.cells.map(effect));
    assert.ok(strongest > 5 && top.some((c) => effect(c) === strongest), `the largest exact effect (${strongest}) is a constructed head's`);
    for (const c of ver.cells.filter((c) => c.chosen === 'random')) assert.ok(effect(c) < 1e-4, `a random other head moves the metric by ${effect(c)}`);

    // Every component of the stacked sweep that AtP* scores above zero belongs to a constructed head.
    const every = out.sweeps.attn_head_all_pos_every!;
    const perComponent = INDUCTION_2L.nLayers * H;
    every.score!.forEach((s, i) => {
      if (s! > 1e-3) assert.ok(constructed.has(i % perComponent), `${every.components![Math.floor(i / perComponent)]} of head ${i % perComponent} scores ${s}`);
    });
    assert.ok(every.verification!.spearman! > 0.5, `estimates and exact values rank alike: ${every.verification!.spearman}`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});

test("a run's method and verify_top (the run commands' method pick) override the spec's, and a bad verify_top is refused", async () => {
  const cacheDir = makeTmpDir('induction-2l-pick');
  try {
    const file = join(__dirname, '../../examples/induction-AB.patch.json');
    const models = new ModelCache();
    const params = { runId: 'r', specFile: file, outDir: join(cacheDir, 'runs'), device: 'cpu' as const, cacheDir };
    const exact = JSON.parse(readFileSync((await runSpec(params, { models })).resultPath, 'utf8')) as PatchResult;
    assert.equal(exact.attribution, undefined, 'the example names no method: exact patching');
    const outcome = await runSpec({ ...params, method: 'atp_star', verifyTop: 2 }, { models });
    const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
    assert.equal(result.attribution?.method, 'atp_star');
    assert.equal(result.attribution?.verifyTop, 2);
    assert.deepEqual(Object.keys(result.sweeps), Object.keys(exact.sweeps));
    for (const [name, sweep] of Object.entries(result.sweeps)) {
      const cells = sweep!.verification!.cells;
      assert.deepEqual(
        cells.map((c) => c.chosen),
        ['top', 'top', 'random', 'random'],
        name,
      );
      // A verified cell's exact value is the exact run's.
      for (const c of cells) assert.ok(Math.abs(c.exact - exact.sweeps[name as keyof typeof exact.sweeps]!.values[c.index]!) < 1e-4, `${name}[${c.index}]`);
    }
    await assert.rejects(
      runSpec({ ...params, method: 'atp', verifyTop: 2.5 }, { models }),
      (e: Error) => e instanceof UserError && /2\.5, is not a whole number from 0 to 1000/.test(e.message),
    );
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
});
