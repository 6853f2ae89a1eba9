/**
 * The decoder graphs against the float64 reference for every mechanism a ModelConfig can switch on, on
 * synthetic configs that combine them the way the families do (and some ways no family does). The family
 * tests check that each checkpoint layout lands on the right flags; these check each flag itself, with
 * random weights built directly in the engine's layout (test/helpers/syntheticModels.ts).
 */
import { test } from 'node:test';
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import { Runtime } from '../../src/engine/runtime';
import { expectForwardMatches, expectSweepsMatch } from '../helpers/referenceChecks';
import { randomWeights, SYNTHETIC_CASES, toReference } from '../helpers/syntheticModels';

let runtime: Promise<Runtime> | undefined;

SYNTHETIC_CASES.forEach(([label, cfg], i) => {
  test(`${label}: logits and every hook point equal the float64 reference`, async () => {
    const w = randomWeights(cfg, 100 + i);
    const model = new HookedTransformer(cfg, w, await (runtime ??= Runtime.create('cpu')));
    await expectForwardMatches(model, toReference(cfg, w), cfg, 7 + i);
  });

  test(`${label}: every sweep the model has, fast and naive, equals the reference's naive loop`, async () => {
    const w = randomWeights(cfg, 200 + i);
    const model = new HookedTransformer(cfg, w, await (runtime ??= Runtime.create('cpu')));
    await expectSweepsMatch(model, toReference(cfg, w), cfg, 30 + i);
  });
});
