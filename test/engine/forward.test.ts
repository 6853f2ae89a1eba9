import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HookPatch } from '../../src/engine/hookedTransformer';
import { allHookNames, hookMaskShape, hookShape, parseHookName } from '../../src/engine/hooks';
import { numel } from '../../src/engine/tensor';
import { referenceForward } from '../helpers/reference';
import { maxAbsDiff, randomModel, seededInts } from '../helpers/models';

const CONFIGS = [
  { nLayers: 1, nHeads: 1, dModel: 8, dVocab: 64, nCtx: 16, seed: 11 },
  { nLayers: 2, nHeads: 4, dModel: 16, dVocab: 100, nCtx: 32, seed: 12 },
  { nLayers: 4, nHeads: 6, dModel: 24, dVocab: 50257, nCtx: 24, seed: 13 },
];
const TOL = 1e-4;

for (const o of CONFIGS) {
  const label = `${o.nLayers}L/${o.nHeads}H d${o.dModel} V${o.dVocab}`;

  test(`${label}: logits and every hook point equal the float64 reference (batch 3)`, async () => {
    const { cfg, ref: refModel, model } = await randomModel(o);
    const rnd = seededInts(o.seed);
    const ids = Array.from({ length: 3 }, () => Array.from({ length: 7 }, () => rnd(0, cfg.dVocab)));
    const ref = referenceForward(refModel, ids);
    const got = await model.runWithCache(ids);
    assert.deepEqual(got.logits.shape, ref.logits.shape);
    assert.ok(maxAbsDiff(got.logits.data, ref.logits.data) <= TOL, `logits differ by ${maxAbsDiff(got.logits.data, ref.logits.data)}`);
    const names = allHookNames(cfg);
    assert.deepEqual([...got.cache.keys()].sort(), [...names].sort());
    for (const name of names) {
      const a = got.cache.get(name)!;
      const r = ref.cache.get(name)!;
      assert.deepEqual(a.shape, r.shape, name);
      const d = maxAbsDiff(a.data, r.data);
      assert.ok(d <= TOL, `${name} differs by ${d}`);
    }
  });

  test(`${label}: a patch through graph inputs equals a reference hook that overwrites the same cells`, async () => {
    const { cfg, ref: refModel, model } = await randomModel(o);
    const rnd = seededInts(o.seed + 100);
    const B = 2;
    const P = 6;
    const ids = Array.from({ length: B }, () => Array.from({ length: P }, () => rnd(0, cfg.dVocab)));
    for (const name of allHookNames(cfg)) {
      const ref0 = parseHookName(name, cfg)!;
      const shape = hookShape(cfg, ref0.hook, B, P);
      const maskShape = hookMaskShape(cfg, ref0.hook, B, P);
      const source = { shape, data: Float32Array.from({ length: numel(shape) }, () => rnd(-1000, 1000) / 1000) };
      // Pattern values are probabilities downstream; random ones still exercise the overwrite exactly.
      const mask = Uint8Array.from({ length: numel(maskShape) }, () => (rnd(0, 3) === 0 ? 1 : 0));
      const cellSize = numel(shape) / numel(maskShape);
      const patches = new Map<string, HookPatch>([[name, { source, mask }]]);
      const got = await model.forward(ids, { patches, capture: [name] });
      const ref = referenceForward(refModel, ids, (n, act) => {
        if (n !== name) return;
        for (let c = 0; c < mask.length; c++) {
          if (mask[c]) for (let k = 0; k < cellSize; k++) act.data[c * cellSize + k] = source.data[c * cellSize + k]!;
        }
      });
      const d = maxAbsDiff(got.logits.data, ref.logits.data);
      assert.ok(d <= TOL, `${name}: patched logits differ by ${d}`);
      assert.ok(maxAbsDiff(got.cache.get(name)!.data, ref.cache.get(name)!.data) <= TOL, `${name}: captured value is not the patched one`);
    }
  });
}
