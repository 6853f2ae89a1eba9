// npm run bench:patching [-- --device cpu|webgpu|cuda] [--repeats 3] [--sample 40] [--budget 1024] [--sweeps a,b]
// Fast exact patching vs TransformerLens's naive loop on a GPT-2-small-shaped random model, 2 prompt
// pairs of 47 tokens (the notebook's shapes). The naive time is measured on a random sample of indices
// and scaled to the whole sweep; both modes' values are compared on that sample.
import { parseArgs } from 'node:util';
import { HookedTransformer } from '../src/engine/hookedTransformer';
import { loadCheckpoint } from '../src/engine/model/checkpoint';
import { executeFast } from '../src/engine/patching/fastExecutor';
import { executeNaive } from '../src/engine/patching/naiveExecutor';
import { preparePatching } from '../src/engine/patching/runPatching';
import { planSweep } from '../src/engine/patching/sweeps';
import { Runtime } from '../src/engine/runtime';
import type { DeviceSetting } from '../src/protocol/engineRpc';
import type { ResolvedPair, SweepName } from '../src/protocol/spec';
import { seededInts } from '../test/helpers/models';
import { benchModelDir, matmulGflops, median, peakRssMiB, timeIt } from './common';

const { values: o } = parseArgs({
  options: {
    device: { type: 'string', default: 'cpu' },
    repeats: { type: 'string', default: '3' },
    sample: { type: 'string', default: '40' },
    budget: { type: 'string', default: '1024' },
    sweeps: { type: 'string', default: 'resid_pre,attn_head_out_by_pos,block_every,attn_head_all_pos_every' },
  },
});

function pairs(vocab: number): ResolvedPair[] {
  const rnd = seededInts(47);
  return [0, 1].map(() => {
    const clean = Array.from({ length: 47 }, () => rnd(100, vocab));
    // The corruption changes a few tokens, as a name swap does.
    const corrupted = clean.map((t, i) => (i === 3 || i === 17 || i === 40 ? rnd(100, vocab) : t));
    return { clean, corrupted, answer: rnd(100, vocab), wrong: rnd(100, vocab) };
  });
}

async function main(): Promise<void> {
  const dir = benchModelDir();
  const { config, weights } = loadCheckpoint(dir);
  const runtime = await Runtime.create(o.device as DeviceSetting);
  const model = new HookedTransformer(config, weights, runtime);
  const sweeps = o.sweeps!.split(',') as SweepName[];
  const repeats = Number(o.repeats);
  const sampleSize = Number(o.sample);
  const budget = Number(o.budget);
  const spec = { name: 'bench', model: undefined, metric: 'logit_diff' as const, sweeps, prependBos: false, pairs: pairs(config.dVocab) };
  const { problem } = await preparePatching(model, spec, { memoryBudgetMiB: budget });
  const rssReady = peakRssMiB();
  console.log(`GPT-2-small shape, random weights, 2 pairs x 47 tokens, provider ${runtime.provider}, memory budget ${budget} MiB`);
  console.log(`fast: median of ${repeats}; naive: ${sampleSize} random indices per sweep, timed and scaled to the sweep\n`);

  const rows: string[] = [];
  let fastPeak = rssReady;
  const naiveRuns: (() => Promise<void>)[] = [];
  for (const name of sweeps) {
    const plan = planSweep(name, config, problem.nPos);
    const n = plan.slots.length;
    const times: number[] = [];
    let fastFlops = 0;
    let fastValues: Float64Array = new Float64Array(0);
    for (let r = 0; r < repeats; r++) {
      const f0 = model.flops;
      times.push(await timeIt(async () => (fastValues = await executeFast(problem, plan.slots, {}))));
      fastFlops = model.flops - f0;
      fastPeak = Math.max(fastPeak, peakRssMiB());
    }
    const tFast = median(times);
    // The naive loop runs after every fast sweep, so the fast executor's peak memory is read alone.
    naiveRuns.push(async () => {
      const rnd = seededInts(name.length);
      const sample = [...new Set(Array.from({ length: Math.min(sampleSize, n) * 3 }, () => rnd(0, n)))].slice(0, Math.min(sampleSize, n));
      const f0 = model.flops;
      let naiveValues: Float64Array = new Float64Array(0);
      const tSample = await timeIt(async () => (naiveValues = await executeNaive(problem, sample.map((i) => plan.slots[i]!), {})));
      const naiveFlops = ((model.flops - f0) * n) / sample.length;
      const tNaive = (tSample * n) / sample.length;
      const diff = Math.max(...sample.map((i, k) => Math.abs(naiveValues[k]! - fastValues[i]!)));
      rows.push(
        `| ${name} | ${n} | ${tFast.toFixed(1)} s | ${tNaive.toFixed(1)} s (scaled from ${sample.length}) | ${(tNaive / tFast).toFixed(1)}x | ` +
          `${(fastFlops / 1e12).toFixed(2)} | ${(naiveFlops / 1e12).toFixed(2)} | ${(fastFlops / tFast / 1e9).toFixed(1)} | ${diff.toExponential(1)} |`,
      );
    });
  }
  for (const run of naiveRuns) await run();
  const mm = await matmulGflops(runtime.provider);
  console.log('| sweep | indices | fast | naive | speed-up | fast TFLOP | naive TFLOP | fast GFLOP/s | max |fast - naive| on sample |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  rows.forEach((r) => console.log(r));
  console.log(`\nplain 2048x2048 MatMul through onnxruntime (${runtime.provider}): ${mm.toFixed(1)} GFLOP/s`);
  console.log(`peak RSS: ${rssReady.toFixed(0)} MiB with the model loaded and both runs cached; ${fastPeak.toFixed(0)} MiB at the fast executor's peak (+${(fastPeak - rssReady).toFixed(0)} MiB, budget ${budget} MiB)`);
  await runtime.release();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
