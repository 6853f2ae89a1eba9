/**
 * Checkpoints of real models' exact shapes, random, in bfloat16: Llama 3.2 1B (16 layers, d_model 2048,
 * 32 query and 8 key/value heads, d_mlp 8192, vocabulary 128256, tied, llama3 rope scaling; 2.5 GB) and
 * Gemma 2 2B (26 layers, d_model 2304, 8 query and 4 key/value heads of 256, d_mlp 9216, vocabulary
 * 256000, tied, soft-caps, alternating local layers; 5.2 GB). Each is refused by the memory check when the
 * limit is below its float32 size, loaded within twice its float32 weights of peak memory otherwise, and
 * patched (a resid_pre sweep on a 5-token pair). On two cores the 1B takes about 1.5 minutes (5 s to
 * write, about a minute to load: bf16 widening and the [out, in] to [in, out] transposes, 20 s to sweep),
 * the 2B about 2 (11 s, 56 s, 39 s; peak RSS 1.03x its 9.7 GiB of float32 weights). Each model runs in a
 * child process so its peak RSS is its own.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { GEMMA_2_2B, LLAMA_3_2_1B, type RandomLlamaOptions, writeLargeRandomBf16Checkpoint } from '../helpers/checkpoints/llama';

function expectLargeModelRuns(name: string, o: RandomLlamaOptions, params: number, f32: { limit: number; needs: string }): void {
  const dir = makeTmpDir(name);
  try {
    const t0 = Date.now();
    writeLargeRandomBf16Checkpoint(dir, o);
    const writeSeconds = (Date.now() - t0) / 1000;

    // Below the float32 size the model is refused from its config.json alone, before any weight is read.
    const saved = process.env.PATCHLENS_MAX_MODEL_BYTES;
    process.env.PATCHLENS_MAX_MODEL_BYTES = String(f32.limit);
    try {
      assert.throws(
        () => loadCheckpoint(dir),
        (e: unknown) => e instanceof UserError && e.message.includes(`needs ${f32.needs} for its float32 weights (${params} parameters`),
      );
    } finally {
      if (saved === undefined) delete process.env.PATCHLENS_MAX_MODEL_BYTES;
      else process.env.PATCHLENS_MAX_MODEL_BYTES = saved;
    }

    const child = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, '../helpers/largeModelRun.ts'), dir], { encoding: 'utf8', maxBuffer: 1 << 24 });
    assert.equal(child.status, 0, child.stderr);
    const r = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
      weightsDtype: string;
      params: number;
      loadSeconds: number;
      sweepSeconds: number;
      loadPeakRss: number;
      peakRss: number;
      baselines: { clean: number; corrupted: number };
      shape: number[];
      values: number[];
    };
    const bytes = 4 * r.params;
    console.log(
      `${name}: write ${writeSeconds.toFixed(1)} s, load ${r.loadSeconds.toFixed(1)} s, sweep ${r.sweepSeconds.toFixed(1)} s; peak RSS ${(r.loadPeakRss / 2 ** 30).toFixed(2)} GiB after the load, ${(r.peakRss / 2 ** 30).toFixed(2)} GiB after the sweep, float32 weights ${(bytes / 2 ** 30).toFixed(2)} GiB (${(r.loadPeakRss / bytes).toFixed(2)}x, ${(r.peakRss / bytes).toFixed(2)}x)`,
    );
    assert.equal(r.weightsDtype, 'BF16');
    assert.equal(r.params, params);
    // The requirement is under 2x; the loader frees each stored tensor as it converts it and stays near 1x
    // (1.8x when it kept them all until the end), so 1.5x also guards that.
    assert.ok(r.loadPeakRss < 1.5 * bytes, `peak RSS of the load ${r.loadPeakRss} is not under 1.5x the float32 weights ${bytes}`);
    assert.deepEqual(r.shape, [o.nLayers, 5]);
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
}

test("Llama 3.2 1B's shape in bfloat16: the memory check, a load under 2x the float32 weights, a resid_pre sweep", { timeout: 15 * 60_000 }, () => {
  // Llama 3.2 1B's 1,235,814,400 parameters, plus the engine's zero biases (q/k/v, o, MLP: 15,360 a layer).
  expectLargeModelRuns('llama-1b-bf16', LLAMA_3_2_1B, 1_235_814_400 + 16 * 15_360, { limit: 4e9, needs: '4.6 GiB' });
});

test("Gemma 2 2B's shape in bfloat16: the memory check, a load under 2x the float32 weights, a resid_pre sweep", { timeout: 20 * 60_000 }, () => {
  // Gemma 2 2B's 2,614,341,888 parameters, plus the engine's zero biases (q/k/v, o, MLP: 17,920 a layer).
  expectLargeModelRuns('gemma2-2b-bf16', GEMMA_2_2B, 2_614_341_888 + 26 * 17_920, { limit: 9e9, needs: '9.7 GiB' });
});
