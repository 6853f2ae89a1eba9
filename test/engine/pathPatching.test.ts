// Path patching (Wang et al. 2022, ARENA's formulation) against a naive float64 implementation of ARENA's
// algorithm (test/helpers/referencePathPatching.ts), in both modes and both directions, on a random GPT-2
// and a random grouped-query Llama; and on models whose weights make the answer known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { INDUCTION_2L } from '../../src/engine/model/builtin/induction2l';
import { ModelCache } from '../../src/engine/modelLoader';
import { runSpec } from '../../src/engine/runSpec';
import type { PatchResult } from '../../src/protocol/result';
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import type { ModelWeights } from '../../src/engine/model/weights';
import { planPathPatching } from '../../src/engine/patching/pathPatching';
import { runPatching } from '../../src/engine/patching/runPatching';
import { Runtime } from '../../src/engine/runtime';
import type { Ablation, Direction, PathPatchingSpec, ResolvedPair } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { loadTestModel, maxAbsDiff, randomModel, type TestModel } from '../helpers/models';
import { labelledPairs, paddedPrompts, refMetricOf, specOf } from '../helpers/patchingCases';
import { referenceForward, type RefModel } from '../helpers/reference';
import { refAblationCache } from '../helpers/referencePatching';
import { referencePathPatch, referencePathPatchingSweep, type RefPathRuns, type RefReceiver } from '../helpers/referencePathPatching';
import { syntheticConfig, randomWeights, toReference } from '../helpers/syntheticModels';

const TOL = 1e-4;
const EXAMPLES = join(__dirname, '..', '..', 'examples');

const refReceivers = (r: PathPatchingSpec['receivers']): RefReceiver[] | 'resid_final' =>
  r === 'resid_final'
    ? r
    : r.map((name) => {
        const [, l, h, input] = /^L(\d+)H(\d+)\.(q|k|v)$/.exec(name)!;
        return { layer: Number(l), head: Number(h), input: input as RefReceiver['input'] };
      });
const refSenders = (names: string[]): [number, number][] => names.map((n) => n.slice(1).split('H').map(Number) as [number, number]);

/** Both runs in the reference, oriented as the engine's: the source is clean when denoising, corrupted when noising. */
function refRuns(ref: RefModel, pairs: ResolvedPair[], bos: number, flow: Direction | Ablation): RefPathRuns {
  const { clean, corrupted } = paddedPrompts(pairs, bos);
  if (flow !== 'denoising' && flow !== 'noising') {
    // An ablation writes its zeros or means into the clean run.
    const cleanCache = referenceForward(ref, clean).cache;
    return {
      source: refAblationCache(
        cleanCache,
        flow,
        pairs.map((p) => p.clean.length),
      ),
      run: clean,
      runCache: cleanCache,
    };
  }
  const [source, run] = flow === 'noising' ? [corrupted, clean] : [clean, corrupted];
  return { source: referenceForward(ref, source).cache, run, runCache: referenceForward(ref, run).cache };
}

async function expectMatchesArena(m: Pick<TestModel, 'cfg' | 'model' | 'ref'>, pairs: ResolvedPair[], path: PathPatchingSpec, flow: Direction | Ablation): Promise<void> {
  const runs = refRuns(m.ref, pairs, m.cfg.bosTokenId, flow);
  const metric = refMetricOf(pairs);
  const want = referencePathPatchingSweep(m.ref, runs, refReceivers(path.receivers), metric);
  const wantSet = path.senders ? referencePathPatch(m.ref, runs, refSenders(path.senders), refReceivers(path.receivers), metric) : undefined;
  for (const [mode, budget] of [
    ['naive', 1024],
    ['fast', 1024],
    ['fast', 0.005],
  ] as const) {
    // A small budget splits the sender sets into groups and the fast executor's batches.
    const how = flow === 'denoising' || flow === 'noising' ? { direction: flow } : { ablation: flow };
    const out = await runPatching(m.model, specOf(pairs, [], { ...how, pathPatching: path }), { mode, memoryBudgetMiB: budget });
    const got = out.sweeps.path_patching!;
    const what = `${mode} (${budget} MiB) ${flow} into ${JSON.stringify(path.receivers)}`;
    assert.deepEqual(got.shape, want.shape, what);
    assert.deepEqual(got.axes, ['layer', 'head']);
    assert.deepEqual(got.receivers, path.receivers === 'resid_final' ? ['resid_final'] : path.receivers);
    const d = maxAbsDiff(got.values, want.values);
    assert.ok(d <= TOL, `${what}: max abs diff ${d}`);
    if (wantSet !== undefined) {
      assert.deepEqual(got.senderSet?.senders, path.senders);
      assert.ok(Math.abs(got.senderSet!.value - wantSet) <= TOL, `${what}: sender set ${got.senderSet!.value} vs ${wantSet}`);
    }
  }
}

const GPT2 = { nLayers: 3, nHeads: 3, dModel: 12, dVocab: 50, nCtx: 16, seed: 91 };

for (const direction of ['denoising', 'noising'] as const) {
  test(`GPT-2: ${direction} path patching into heads' q, k and v inputs and into resid_final equals ARENA's algorithm, both modes, pairs of different lengths`, async () => {
    const m = await randomModel(GPT2);
    const pairs = labelledPairs(m, 91, [7, 4, 6]);
    await expectMatchesArena(m, pairs, { receivers: ['L2H0.q', 'L1H2.k', 'L2H1.v'], senders: ['L0H1', 'L1H0'] }, direction);
    await expectMatchesArena(m, pairs, { receivers: 'resid_final', senders: ['L2H2'] }, direction);
  });
}

test("GPT-2: path patching from a mean ablation (the dataset's means into the clean run) equals ARENA's algorithm with the same means, both modes", async () => {
  const m = await randomModel(GPT2);
  const pairs = labelledPairs(m, 92, [7, 4, 6]);
  await expectMatchesArena(m, pairs, { receivers: ['L2H2.q', 'L2H0.k'] }, 'mean');
  await expectMatchesArena(m, pairs, { receivers: 'resid_final' }, 'zero');
});

test("Llama with grouped-query attention (4 query heads, 2 key/value heads): path patching into q, k and v (k and v by key/value head) and resid_final equals ARENA's algorithm, both modes", async () => {
  const dir = makeTmpDir('llama-path');
  writeRandomLlamaCheckpoint(dir, { arch: 'llama', nLayers: 3, nHeads: 4, nKvHeads: 2, dModel: 32, dMlp: 48, dVocab: 120, nCtx: 32, seed: 93, ropeTheta: 10000 });
  const m = await loadTestModel(dir);
  const pairs = labelledPairs(m, 93, [6, 8]);
  await expectMatchesArena(m, pairs, { receivers: ['L2H3.q', 'L2H1.k', 'L1H0.v', 'L2H0.v'], senders: ['L0H2', 'L1H3'] }, 'denoising');
  await expectMatchesArena(m, pairs, { receivers: 'resid_final' }, 'noising');
});

let runtime: Promise<Runtime> | undefined;

/** A synthetic GPT-2 whose heads in `silent` ([layer, head]) write nothing: their rows of W_O are zero. */
async function withSilentHeads(silent: [number, number][]): Promise<Pick<TestModel, 'cfg' | 'model' | 'ref'>> {
  const cfg = syntheticConfig({ nLayers: 3, nHeads: 3, nKvHeads: 3, dHead: 4, dModel: 12, dMlp: 16 });
  const w: ModelWeights = randomWeights(cfg, 95);
  const rowBlock = cfg.dHead * cfg.dModel;
  for (const [l, h] of silent) w.blocks[l]!.wO.data.fill(0, h * rowBlock, (h + 1) * rowBlock);
  return { cfg, model: new HookedTransformer(cfg, w, await (runtime ??= Runtime.create('cpu'))), ref: toReference(cfg, w) };
}

const baselineOf = async (m: Pick<TestModel, 'model'>, pairs: ResolvedPair[]) => (await runPatching(m.model, specOf(pairs, ['resid_pre']))).baselines.corrupted!;

test('a constructed path: only the senders that write into the receiver move the heatmap, and a receiver that writes nothing shows no effect at all', async () => {
  // Layer 0's heads 0 and 2 write nothing, so only L0H1 of layer 0 can reach L2H0's query; L2H1 writes nothing,
  // so nothing that passes through its query can reach the logits.
  const m = await withSilentHeads([
    [0, 0],
    [0, 2],
    [2, 1],
  ]);
  const pairs = labelledPairs(m, 95, [7, 6]);
  const base = await baselineOf(m, pairs);
  const heatmap = async (receivers: PathPatchingSpec['receivers']) =>
    (await runPatching(m.model, specOf(pairs, [], { pathPatching: { receivers } }))).sweeps.path_patching!.values as number[];
  const moved = (v: number) => Math.abs(v - base) > 1e-4;
  const still = (v: number) => Math.abs(v - base) <= 1e-6;
  const intoQuery = await heatmap(['L2H0.q']);
  assert.deepEqual(intoQuery.map(moved), [false, true, false, true, true, true], `L0H1 and layer 1 move L2H0's query: ${intoQuery.map((v) => v - base)}`);
  assert.ok(still(intoQuery[0]!) && still(intoQuery[2]!), `silent senders: ${intoQuery[0]! - base}, ${intoQuery[2]! - base}`);
  const intoSilent = await heatmap(['L2H1.q']);
  assert.ok(intoSilent.every(still), `through a head that writes nothing: ${intoSilent.map((v) => v - base)}`);
  // Patched as a whole head, L0H1 does move the logits: path patching measured only the path through L2H1.q.
  const whole = await runPatching(m.model, specOf(pairs, ['attn_head_out_all_pos']));
  assert.ok(moved(whole.sweeps.attn_head_out_all_pos!.values[1]!));
});

test("into resid_final, when no later head writes anything, each head's path effect is its whole effect (the sweep's cell); otherwise the frozen heads make them differ", async () => {
  const pairs = (m: Pick<TestModel, 'cfg'>) => labelledPairs(m, 96, [6, 7]);
  const quiet = await withSilentHeads(
    [0, 1, 2].flatMap(
      (h) =>
        [
          [1, h],
          [2, h],
        ] as [number, number][],
    ),
  );
  const loud = await withSilentHeads([]);
  for (const [m, same] of [
    [quiet, true],
    [loud, false],
  ] as const) {
    const out = await runPatching(m.model, specOf(pairs(m), ['attn_head_out_all_pos'], { pathPatching: { receivers: 'resid_final' } }), { mode: 'fast' });
    const path = out.sweeps.path_patching!.values.slice(0, 3);
    const whole = out.sweeps.attn_head_out_all_pos!.values.slice(0, 3);
    const d = maxAbsDiff(path, whole);
    if (same) assert.ok(d <= 1e-6, `layer 0 path vs whole effects differ by ${d}`);
    else assert.ok(d > 1e-4, `with later heads frozen, layer 0's path effects should differ from the whole ones (${d})`);
  }
});

test('receivers and senders the model lacks are refused with one message that says where and what the model has', async () => {
  const m = await randomModel(GPT2);
  const dir = makeTmpDir('llama-path-errors');
  writeRandomLlamaCheckpoint(dir, { arch: 'llama', nLayers: 2, nHeads: 4, nKvHeads: 2, dModel: 16, dMlp: 24, dVocab: 60, nCtx: 16, seed: 94 });
  const gqa = await loadTestModel(dir);
  const cases: [Pick<TestModel, 'cfg'>, PathPatchingSpec, RegExp][] = [
    [m, { receivers: ['L3H0.q'] }, /^path_patching\.receivers\[0\]: L3H0\.q names layer 3, but the model has layers 0…2$/],
    [m, { receivers: ['L1H0.q', 'L2H3.v'] }, /^path_patching\.receivers\[1\]: L2H3\.v names head 3, but the model has heads 0…2$/],
    [
      gqa,
      { receivers: ['L1H3.k'] },
      /^path_patching\.receivers\[0\]: L1H3\.k names head 3, but the model has key\/value heads 0…1 \(on this grouped-query model \.k and \.v name key\/value heads: query head h reads key\/value head ⌊h \/ 2⌋\)$/,
    ],
    [m, { receivers: ['L0H1.q'] }, /^path_patching\.receivers are all in layer 0, which no head's output reaches; choose heads in layers 1…2, or "resid_final"$/],
    [
      m,
      { receivers: ['L1H1.q'], senders: ['L1H0'] },
      /^path_patching\.senders\[0\]: L1H0 is in layer 1, but the receivers' last layer is 1: a head's output reaches only later layers; choose senders in layers 0…0$/,
    ],
    [m, { receivers: 'resid_final', senders: ['L0H5'] }, /^path_patching\.senders\[0\]: L0H5 names head 5, but the model has heads 0…2$/],
    [m, { receivers: ['L1H0.z'] }, /^path_patching\.receivers\[0\] is "L1H0\.z", not a receiver; a receiver is a head's query, key or value input/],
  ];
  for (const [model, path, message] of cases)
    assert.throws(
      () => planPathPatching(path, model.cfg),
      (e: Error) => message.test(e.message),
      JSON.stringify(path),
    );
  // The run refuses before any work.
  await assert.rejects(runPatching(m.model, specOf(labelledPairs(m, 1, [5]), [], { pathPatching: { receivers: ['L9H0.q'] } })), /names layer 9/);
});

test("induction-2l: path patching into the induction head L1H2's keys finds the previous-token head L0H1 alone; the result file and its PNG carry the heatmap and its receivers", async () => {
  const outDir = makeTmpDir('path-run');
  const specFile = join(EXAMPLES, 'induction-path.patch.json');
  const outcome = await runSpec({ runId: 'r', specFile, outDir, png: true, device: 'cpu' }, { models: new ModelCache() });
  const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
  const sweep = result.sweeps.path_patching!;
  assert.deepEqual([sweep.shape, sweep.axes, sweep.receivers], [[1, 4], ['layer', 'head'], ['L1H2.k']]);
  const effects = (sweep.values as number[]).map((v) => Math.abs(v - result.baselines!.corrupted!));
  const prev = INDUCTION_2L.prevTokenHead.head;
  assert.ok(effects[prev]! > 1, `L0H1 moves the log-prob by ${effects[prev]}`);
  effects.forEach((e, h) => h !== prev && assert.ok(e < 0.05 * effects[prev]!, `distractor L0H${h} moves it by ${e}`));
  assert.deepEqual(
    outcome.pngPaths.map((p) => p.slice(p.lastIndexOf('.', p.length - 5))),
    ['.path_patching.png'],
  );
});
