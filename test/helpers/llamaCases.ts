/**
 * The reference cases of the Llama-style families (llamaFamily.test.ts, gemmaQwen3Olmo2.test.ts): a random
 * checkpoint per set of options, written and loaded once, and the same two tests for each.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeTmpDir } from './checkpoint';
import { type RandomLlamaOptions, writeRandomLlamaCheckpoint } from './checkpoints/llama';
import { loadTestModel, type TestModel } from './models';
import { expectForwardMatches, expectSweepsMatch, sweepsOf } from './referenceChecks';

/** A label, the checkpoint's options, and whether to run every sweep (slow) besides the forward. */
export type LlamaCase = [label: string, options: RandomLlamaOptions, checks: { sweeps: boolean }];

const models = new Map<string, Promise<TestModel>>();

export function llamaTestModel(o: RandomLlamaOptions): Promise<TestModel> {
  const key = JSON.stringify(o);
  let m = models.get(key);
  if (!m) {
    const dir = makeTmpDir(`${o.arch}-${o.seed}`);
    writeRandomLlamaCheckpoint(dir, o);
    models.set(key, (m = loadTestModel(dir)));
  }
  return m;
}

/** Each case's logits and hook points against the float64 reference; with `sweeps`, all 19 sweeps in both modes against its naive loop. */
export function testLlamaCases(cases: readonly LlamaCase[]): void {
  for (const [label, o, { sweeps }] of cases) {
    test(`${label}: logits and every hook point equal the float64 reference`, async () => {
      const m = await llamaTestModel(o);
      assert.equal(m.cfg.architecture, o.arch);
      assert.equal(m.cfg.nKvHeads, o.nKvHeads ?? o.nHeads);
      assert.equal(m.cfg.dHead, o.dHead ?? o.dModel / o.nHeads);
      await expectForwardMatches(m.model, m.ref, m.cfg, o.seed);
    });
    if (sweeps) {
      test(`${label}: all 19 sweeps, fast and naive, equal the reference's naive loop`, async () => {
        const m = await llamaTestModel(o);
        assert.equal(sweepsOf(m.cfg).length, 19);
        await expectSweepsMatch(m.model, m.ref, m.cfg, 100 + o.seed);
      });
    }
  }
}
