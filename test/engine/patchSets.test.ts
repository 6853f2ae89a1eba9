// Patch sets: every component of a set patched in one run, against the float64 reference writing the same
// slices in one forward (written here from the component names, not through the engine's parser), in both
// modes, on pairs of different lengths with labels; and a set of one equals the sweep's cell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPatching } from '../../src/engine/patching/runPatching';
import type { ResolvedSpec } from '../../src/protocol/spec';
import { referenceForward } from '../helpers/reference';
import { refAblationCache, referencePatchedRun, type RefPart } from '../helpers/referencePatching';
import { randomModel, type TestModel } from '../helpers/models';
import { labelledPairs, paddedPrompts, refMetricOf, specOf } from '../helpers/patchingCases';

const TOL = 1e-4;
const O = { nLayers: 2, nHeads: 3, dModel: 12, dVocab: 50, nCtx: 16, seed: 91 };

/** A component as the reference's slice: [B, P, H, E] for head hooks (axis 1 position, 2 head), [B, P, D] for the layer's. */
function refPart(name: string, spec: ResolvedSpec): RefPart {
  const m = /^L(\d+)(?:H(\d+)(?:\.(q|k|v))?|\.(\w+))(?:@(\w+))?$/.exec(name)!;
  const hook = m[2] !== undefined ? `attn.hook_${m[3] ?? 'z'}` : `hook_${m[4]}`;
  const fixed = new Map<number, number | number[][]>();
  if (m[2] !== undefined) fixed.set(2, Number(m[2]));
  if (m[5] !== undefined) fixed.set(1, /^\d+$/.test(m[5]) ? Number(m[5]) : spec.pairs.map((p) => p.labels![m[5]!]!));
  return { name: `blocks.${m[1]}.${hook}`, fixed };
}

const SETS = [
  { name: 'heads', components: ['L0H1', 'L1H2', 'L1H0.q'] },
  { name: 'mixed', components: ['L0.attn_out@A', 'L1H1@B', 'L0H2.v', 'L1.mlp_out@END'] },
  { name: 'positions', components: ['L0.resid_pre@2', 'L1H0.k@1', 'L1.resid_post@B'] },
  { name: 'one head', components: ['L1H2'] },
  { name: 'one label', components: ['L0.resid_pre@A'] },
  { name: 'one head at a label', components: ['L1H1.v@B'] },
];

/** denoising and noising patch from the other run; 'mean' writes the clean runs' means into the clean run. */
async function check(m: TestModel, mode: 'naive' | 'fast', how: 'denoising' | 'noising' | 'mean'): Promise<void> {
  const pairs = labelledPairs(m, 91, [7, 4, 6]);
  const spec = specOf(pairs, ['resid_pre', 'attn_head_out_all_pos', 'attn_head_v_by_pos'], { patchSets: SETS, ...(how === 'mean' ? { ablation: how } : { direction: how }) });
  const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: 0.02 });
  const bos = m.cfg.bosTokenId;
  const { clean, corrupted } = paddedPrompts(pairs, bos);
  const [source, run] = how === 'denoising' ? [clean, corrupted] : [corrupted, clean];
  const cache =
    how === 'mean'
      ? refAblationCache(
          referenceForward(m.ref, clean).cache,
          how,
          pairs.map((p) => p.clean.length),
        )
      : referenceForward(m.ref, source).cache;
  assert.deepEqual(
    out.patchSets!.map((s) => s.name),
    SETS.map((s) => s.name),
  );
  for (const [k, set] of SETS.entries()) {
    const want = referencePatchedRun(
      m.ref,
      cache,
      run,
      set.components.map((c) => refPart(c, spec)),
      refMetricOf(pairs),
    );
    const d = Math.abs(out.patchSets![k]!.value! - want);
    assert.ok(d <= TOL, `${how} ${set.name}: ${out.patchSets![k]!.value} vs ${want} (diff ${d})`);
  }
  // A set of one is the sweep's cell (labels A, B, END; heads 3).
  const cell = (sweep: keyof typeof out.sweeps, i: number) => out.sweeps[sweep]!.values[i]!;
  const same = (set: number, value: number) =>
    assert.ok(Math.abs(out.patchSets![set]!.value! - value) <= 1e-5, `${SETS[set]!.name}: ${out.patchSets![set]!.value} vs the sweep's ${value}`);
  same(3, cell('attn_head_out_all_pos', 1 * 3 + 2));
  same(4, cell('resid_pre', 0 * 3 + 0));
  same(5, cell('attn_head_v_by_pos', (1 * 3 + 1) * 3 + 1));
}

for (const mode of ['naive', 'fast'] as const) {
  test(`${mode}: patch sets equal the reference's one forward with every slice written, denoising, noising and mean-ablating; a set of one is the sweep's cell`, async () => {
    const m = await randomModel(O);
    await check(m, mode, 'denoising');
    await check(m, mode, 'noising');
    await check(m, mode, 'mean');
  });
}

test('a component the model or the pairs do not have is one message naming the set, before any work', async () => {
  const m = await randomModel(O);
  const pairs = labelledPairs(m, 92, [5, 6]);
  const bad = async (components: string[], re: RegExp) => {
    await assert.rejects(runPatching(m.model, specOf(pairs, [], { patchSets: [{ name: 'x', components }] })), (e: Error) => {
      assert.equal(e.name, 'UserError');
      assert.match(e.message, re);
      return true;
    });
  };
  await bad(['L2H0'], /patch_sets\[0\] \("x"\): L2H0 names layer 2, but the model has layers 0…1/);
  await bad(['L0H3'], /L0H3 names head 3, but the model has heads 0…2/);
  await bad(['L0.resid_pre@IO'], /names the label IO, but the pairs label A, B, END/);
  await bad(['L0.resid_pre@5'], /names position 5, but the shortest pair has 5 tokens/);
});
