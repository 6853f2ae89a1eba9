/**
 * The golden checkpoints of test/fixtures/golden/ (from ../shared/golden: values computed with TransformerLens
 * itself, float64, naive patching): every sweep that has an expected file, run on the checkpoint through the
 * real loader, must equal it within 1e-4.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runPatching } from '../../src/engine/patching/runPatching';
import type { PatchingMode } from '../../src/protocol/engineRpc';
import { SWEEP_NAMES, type ResolvedPair, type ResolvedSpec } from '../../src/protocol/spec';
import { loadTestModel, maxAbsDiff, type TestModel } from './models';

export const GOLDEN_ROOT = resolve(__dirname, '../fixtures/golden');
const TOL = 1e-4;

/**
 * Our 'component' axis is what the golden files and TransformerLens's hints call the stacked axis; our
 * 'kv_head' (the k/v sweeps of a grouped-query model) is their 'head'.
 */
export const sameAxes = (ours: string[], theirs: string[]) => ours.map((a, i) => (a === 'component' || a === 'kv_head' ? theirs[i] : a));

/** The golden checkpoint `name`, its pairs as a spec of every sweep it has expected values for. */
export async function loadGolden(name: string): Promise<{ dir: string; model: TestModel; spec: ResolvedSpec }> {
  const dir = join(GOLDEN_ROOT, name);
  const model = await loadTestModel(join(dir, 'model'));
  const file = JSON.parse(readFileSync(join(dir, 'golden.patch.json'), 'utf8'));
  const pairs: ResolvedPair[] = file.pairs.map((p: Record<string, unknown>) => ({ clean: p.clean_ids, corrupted: p.corrupted_ids, answer: p.answer_id, wrong: p.wrong_id }));
  const sweeps = SWEEP_NAMES.filter((s) => existsSync(join(dir, 'expected', `${s}.json`)));
  return { dir, model, spec: { name: 'golden', model: 'model', metric: 'logit_diff', sweeps, prependBos: false, pairs } };
}

/** Runs every golden sweep in `mode`; returns the largest difference from the expected values. */
export async function expectGoldenMatches(name: string, mode: PatchingMode): Promise<number> {
  const { dir, model, spec } = await loadGolden(name);
  const out = await runPatching(model.model, spec, { mode });
  assert.equal(out.status, 'done');
  let worst = 0;
  for (const sweep of spec.sweeps) {
    const expected = JSON.parse(readFileSync(join(dir, 'expected', `${sweep}.json`), 'utf8'));
    const got = out.sweeps[sweep]!;
    assert.deepEqual(got.shape, expected.shape, sweep);
    assert.deepEqual(sameAxes(got.axes, expected.axes), expected.axes, sweep);
    const flat = (expected.values as unknown[]).flat(4) as number[];
    // TransformerLens pads the key/value rows of a grouped-query model's stacked sweeps with zeros; PatchLens reports them as null.
    got.values.forEach((x, i) => x === null && assert.equal(flat[i], 0, `${name} ${sweep}[${i}] is padding in TransformerLens`));
    const d = maxAbsDiff(
      got.values,
      flat.map((x, i) => (got.values[i] === null ? null : x)),
    );
    assert.ok(d <= TOL, `${name} ${sweep}: max abs diff ${d}`);
    assert.ok(Math.abs(out.baselines.clean - expected.clean_logit_diff) <= TOL, `${sweep}: clean baseline`);
    assert.ok(Math.abs(out.baselines.corrupted! - expected.corrupted_logit_diff) <= TOL, `${sweep}: corrupted baseline`);
    worst = Math.max(worst, d);
  }
  return worst;
}
