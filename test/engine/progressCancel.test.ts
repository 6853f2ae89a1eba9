import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runSpec } from '../../src/engine/runSpec';
import { ModelCache } from '../../src/engine/modelLoader';
import { runPatching } from '../../src/engine/patching/runPatching';
import type { PatchResult } from '../../src/protocol/result';
import type { ResolvedSpec } from '../../src/protocol/spec';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { randomModel, seededInts } from '../helpers/models';

const O = { nLayers: 4, nHeads: 4, dModel: 32, dVocab: 200, nCtx: 32, seed: 41 };

function spec(vocab: number, sweeps: ResolvedSpec['sweeps']): ResolvedSpec {
  const rnd = seededInts(5);
  const pairs = [0, 1].map(() => {
    const clean = Array.from({ length: 12 }, () => rnd(0, vocab));
    return { clean, corrupted: clean.map((t, i) => (i === 4 ? (t + 1) % vocab : t)), answer: 1, wrong: 2 };
  });
  return { name: 't', model: undefined, metric: 'logit_diff', sweeps, prependBos: false, pairs };
}

/** Counts the graph runs that make up patched work: block suffixes (fast) and full forwards (naive). */
function countRuns(model: Awaited<ReturnType<typeof randomModel>>['model']): { runs: number } {
  const counter = { runs: 0 };
  const block = model.blockSuffix.bind(model);
  const forward = model.forward.bind(model);
  model.blockSuffix = (...a) => (counter.runs++, block(...a));
  model.forward = (...a) => (counter.runs++, forward(...a));
  return counter;
}

for (const mode of ['fast', 'naive'] as const) {
  test(`${mode}: progress counts pairs × patches, is reported after every graph run, rises monotonically and ends at the total`, async () => {
    const { model, cfg } = await randomModel(O);
    const s = spec(cfg.dVocab, ['attn_head_out_by_pos']);
    const counter = countRuns(model);
    const events: number[] = [];
    let total = 0;
    const before = counter.runs;
    await runPatching(model, s, { mode, onProgress: (p) => (events.push(p.done), (total = p.total)) });
    const patchedRuns = counter.runs - before - 2; // minus the clean and corrupted baseline runs
    assert.equal(total, s.pairs.length * cfg.nLayers * 12 * cfg.nHeads);
    assert.ok(events.length >= patchedRuns, `${events.length} progress reports for ${patchedRuns} runs`);
    for (let i = 1; i < events.length; i++) assert.ok(events[i]! >= events[i - 1]!, 'progress went backwards');
    assert.equal(events.at(-1), total);
  });

  test(`${mode}: cancelling stops before the next graph run and keeps the sweeps that finished`, async () => {
    const { model, cfg } = await randomModel(O);
    const s = spec(cfg.dVocab, ['resid_pre', 'attn_head_out_by_pos']);
    const counter = countRuns(model);
    const controller = new AbortController();
    let runsAtAbort = -1;
    const out = await runPatching(model, s, {
      mode,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.sweep === 'attn_head_out_by_pos' && runsAtAbort < 0) {
          runsAtAbort = counter.runs;
          controller.abort();
        }
      },
    });
    assert.equal(out.status, 'cancelled');
    assert.deepEqual(Object.keys(out.sweeps), ['resid_pre']);
    assert.ok(counter.runs - runsAtAbort <= 1, `${counter.runs - runsAtAbort} graph runs after the cancel`);
  });
}

test('a cancelled job writes its result file marked cancelled, with the finished sweeps', async () => {
  const dir = makeTmpDir('cancel-job');
  writeRandomGpt2Checkpoint(join(dir, 'model'), O);
  const s = spec(O.dVocab, ['resid_pre', 'attn_head_out_by_pos']);
  const specFile = join(dir, 'c.patch.json');
  writeFileSync(
    specFile,
    JSON.stringify({
      model: 'model',
      metric: 'logit_diff',
      sweeps: s.sweeps,
      prepend_bos: false,
      pairs: s.pairs.map((p) => ({ clean_ids: p.clean, corrupted_ids: p.corrupted, answer_id: p.answer, wrong_id: p.wrong })),
    }),
  );
  const controller = new AbortController();
  const outcome = await runSpec(
    { runId: 'r', specFile, device: 'cpu' },
    { models: new ModelCache(), signal: controller.signal, progress: (p) => p.phase === 'sweep' && p.message === 'attn_head_out_by_pos' && controller.abort() },
  );
  assert.equal(outcome.status, 'cancelled');
  const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
  assert.equal(result.status, 'cancelled');
  assert.match(result.message!, /cancelled after 1 of 2 sweeps/);
  assert.deepEqual(Object.keys(result.sweeps), ['resid_pre']);
  assert.equal(result.sweeps.resid_pre!.values.length, O.nLayers * 12);
});
