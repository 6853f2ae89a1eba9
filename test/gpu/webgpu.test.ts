/**
 * The code a GPU user runs, on every commit: the engine on onnxruntime's `webgpu` provider, through
 * SwiftShader (Chromium's Vulkan driver on the CPU, from Debian's chromium package, which npm test's
 * prerequisites install), checked like the CPU path: every hook point and every sweep in both modes
 * against the float64 reference. SwiftShader is tens of times slower than the CPU provider, so the
 * models are tiny; what is tested is that each op's GPU kernel computes what the graphs mean.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { before, test } from 'node:test';
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { Runtime } from '../../src/engine/runtime';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { writeRandomNeoxCheckpoint } from '../helpers/checkpoints/neox';
import { expectForwardMatches, expectSweepsMatch } from '../helpers/referenceChecks';
import { loadReferenceModel } from '../helpers/referenceModels';
import { randomWeights, SYNTHETIC_CASES, toReference } from '../helpers/syntheticModels';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';

let runtime: Runtime;

before(async () => {
  assert.ok(existsSync(SWIFTSHADER), `${SWIFTSHADER} is missing: install Debian's chromium package (npm test's prerequisites do)`);
  // Only SwiftShader: the Vulkan loader reads these when the first WebGPU session starts.
  process.env.VK_ICD_FILENAMES = SWIFTSHADER;
  process.env.VK_DRIVER_FILES = SWIFTSHADER;
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  runtime = await Runtime.create('webgpu');
  assert.equal(runtime.provider, 'webgpu');
});

const MODELS = [
  {
    label: 'GPT-2 (learned positions, LayerNorm, GELU)',
    write: (dir: string) => writeRandomGpt2Checkpoint(dir, { nLayers: 2, nHeads: 2, dModel: 8, dVocab: 40, nCtx: 8, seed: 31 }),
  },
  {
    label: 'GPT-NeoX (partial rotary, parallel attention and MLP)',
    write: (dir: string) => writeRandomNeoxCheckpoint(dir, { nLayers: 2, nHeads: 2, dModel: 8, dVocab: 40, nCtx: 8, seed: 32, rotaryPct: 0.5 }),
  },
];

MODELS.forEach(({ label, write }, i) => {
  test(`webgpu, ${label}: logits, every hook point and every sweep in both modes equal the float64 reference`, async () => {
    const dir = makeTmpDir(`webgpu-${i}`);
    write(dir);
    const { config, weights } = loadCheckpoint(dir);
    const model = new HookedTransformer(config, weights, runtime);
    const ref = loadReferenceModel(dir);
    await expectForwardMatches(model, ref, config, 40 + i);
    await expectSweepsMatch(model, ref, config, 50 + i, 4);
  });
});

// Every other mechanism the graphs have (RMSNorm, grouped-query heads, gated MLPs, soft-caps, sliding
// windows, q/k norms, post-norms, shortformer, SoLU), on the engine's synthetic configs.
SYNTHETIC_CASES.forEach(([label, cfg], i) => {
  test(`webgpu, synthetic ${label}: logits and every hook point equal the float64 reference`, async () => {
    const w = randomWeights(cfg, 300 + i);
    await expectForwardMatches(new HookedTransformer(cfg, w, runtime), toReference(cfg, w), cfg, 60 + i);
  });
});

test('webgpu, synthetic Gemma 2-like and OLMo 2-like: every sweep in both modes equals the reference', async () => {
  for (const [label, cfg] of SYNTHETIC_CASES.filter(([l]) => /^(Gemma 2|OLMo 2)/.test(l))) {
    const w = randomWeights(cfg, 400);
    await expectSweepsMatch(new HookedTransformer(cfg, w, runtime), toReference(cfg, w), cfg, 70, 4).catch((e: Error) => assert.fail(`${label}: ${e.message}`));
  }
});
