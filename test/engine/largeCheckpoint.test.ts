/**
 * A checkpoint of Llama 3.2 1B's exact shape (16 layers, d_model 2048, 32 query and 8 key/value heads,
 * d_mlp 8192, vocabulary 128256, tied, llama3 rope scaling), random, in bfloat16 (2.5 GB): refused by the
 * memory check when the limit is below its float32 size, loaded within twice its float32 weights of peak
 * memory otherwise, and patched (a resid_pre sweep on a 5-token pair). About 1.5 minutes on two cores:
 * 5 s to write, about a minute to load (bf16 widening and the [out, in] to [in, out] transposes), 20 s to
 * sweep. The model runs in a child process so its peak RSS is its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { LLAMA_3_2_1B, writeLargeRandomBf16Checkpoint } from '../helpers/checkpoints/llama';

// Llama 3.2 1B's 1,235,814,400 parameters, plus the engine's zero biases (q/k/v, o, MLP: 15,360 a layer).
const PARAMS = 1_235_814_400 + 16 * 15_360;

test('Llama 3.2 1B\'s shape in bfloat16: the memory check, a load under 2x the float32 weights, a resid_pre sweep', { timeout: 15 * 60_000 }, () => {
  const dir = makeTmpDir('llama-1b-bf16');
  try {
    writeLargeRandomBf16Checkpoint(dir, LLAMA_3_2_1B);

    // Below the float32 size the model is refused from its config.json alone, before any weight is read.
    const saved = process.env.PATCHLENS_MAX_MODEL_BYTES;
    process.env.PATCHLENS_MAX_MODEL_BYTES = String(4e9);
    try {
      assert.throws(() => loadCheckpoint(dir), (e: unknown) => e instanceof UserError && e.message.includes(`needs 4.6 GiB for its float32 weights (${PARAMS} parameters`));
    } finally {
      if (saved === undefined) delete process.env.PATCHLENS_MAX_MODEL_BYTES;
      else process.env.PATCHLENS_MAX_MODEL_BYTES = saved;
    }

    const child = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, '../helpers/largeModelRun.ts'), dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
    assert.equal(child.status, 0, child.stderr);
    const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
      weightsDtype: string; params: number; loadSeconds: number; sweepSeconds: number; loadPeakRss: number; peakRss: number;
      baselines: { clean: number; corrupted: number }; shape: number[]; values: number[];
    };
    const f32 = 4 * r.params;
    console.log(
      `1B bf16: load ${r.loadSeconds.toFixed(1)} s, sweep ${r.sweepSeconds.toFixed(1)} s; peak RSS ${(r.loadPeakRss / 2 ** 30).toFixed(2)} GiB after the load, ${(r.peakRss / 2 ** 30).toFixed(2)} GiB after the sweep, float32 weights ${(f32 / 2 ** 30).toFixed(2)} GiB (${(r.loadPeakRss / f32).toFixed(2)}x, ${(r.peakRss / f32).toFixed(2)}x)`,
    );
    assert.equal(r.weightsDtype, 'BF16');
    assert.equal(r.params, PARAMS);
    // The requirement is under 2x; the loader frees each stored tensor as it converts it and stays near 1x
    // (1.8x when it kept them all until the end), so 1.5x also guards that.
    assert.ok(r.loadPeakRss < 1.5 * f32, `peak RSS of the load ${r.loadPeakRss} is not under 1.5x the float32 weights ${f32}`);
    assert.deepEqual(r.shape, [16, 5]);
    assert.ok(r.values.every(Number.isFinite));
    const { clean, corrupted } = r.baselines;
    assert.ok(Math.abs(clean - corrupted) > 1e-3, `the prompts must give different baselines (${clean}, ${corrupted})`);
    // Layer 0 sees only the embeddings: patching the one position where the prompts differ is the clean
    // run, patching any other changes nothing.
    for (let p = 0; p < 5; p++) {
      const want = p === 1 ? clean : corrupted;
      assert.ok(Math.abs(r.values[p]! - want) <= 1e-4 * Math.max(1, Math.abs(want)), `layer 0, position ${p}: ${r.values[p]} vs ${want}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
