// npm run bench:patching [-- --shape gpt2-small|small] [--device cpu|webgpu|cuda] [--repeats 3] [--sample 40]
//                          [--budget 1024] [--sweeps a,b] [--baseline] [--whole-command] [--tlref PATH]
// Fast exact patching vs TransformerLens's naive loop on a random model of a benchmark shape, 2 prompt pairs
// (the notebook's shapes). The naive time is measured on a random sample of indices and scaled to the whole
// sweep; both modes' values are compared on that sample. --baseline also times TransformerLens's algorithm
// written plainly in PyTorch (../shared/tools/tlref.py: float32, 2 threads, full logits) on the same
// checkpoint and tokens, in the same run, right after each repeat of the fast sweep (medians of both); --whole-command times `patchlens run` against the whole tlref.py
// command, process start and model load included.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
import { benchModelDir, matmulGflops, median, peakRssMiB, SHAPES, type ShapeName, timeIt } from './common';

const { values: o } = parseArgs({
  options: {
    shape: { type: 'string', default: 'gpt2-small' },
    device: { type: 'string', default: 'cpu' },
    repeats: { type: 'string', default: '3' },
    sample: { type: 'string', default: '40' },
    budget: { type: 'string', default: '1024' },
    sweeps: { type: 'string' },
    baseline: { type: 'boolean', default: false },
    'whole-command': { type: 'boolean', default: false },
    tlref: { type: 'string', default: resolve(__dirname, '../../../shared/tools/tlref.py') },
  },
});

const shape = o.shape as ShapeName;
if (!(shape in SHAPES)) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}`);
const DEFAULT_SWEEPS = shape === 'small' ? 'attn_head_out_by_pos' : 'resid_pre,attn_head_out_by_pos,block_every,attn_head_all_pos_every';

function pairs(vocab: number, tokens: number): ResolvedPair[] {
  const rnd = seededInts(47);
  return [0, 1].map(() => {
    const clean = Array.from({ length: tokens }, () => rnd(100, vocab));
    // The corruption changes a few tokens, as a name swap does.
    const corrupted = clean.map((t, i) => (i === 3 || i === Math.floor(tokens / 3) || i === tokens - 7 ? rnd(100, vocab) : t));
    return { clean, corrupted, answer: rnd(100, vocab), wrong: rnd(100, vocab) };
  });
}

/**
 * The best OpenBLAS kernel for this CPU, for the baseline command only: Debian's OpenBLAS picks a generic
 * one on CPUs newer than itself, which would make the baseline look slower than it is.
 */
function openblasCore(): string | undefined {
  const flags = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  if (/\bavx512_bf16\b/.test(flags)) return 'Cooperlake';
  if (/\bavx512f\b/.test(flags)) return 'SkylakeX';
  if (/\bavx2\b/.test(flags)) return 'Haswell';
  return undefined;
}

/**
 * Runs tlref.py (TransformerLens's loop in PyTorch) on at most `maxPatches` indices: its whole time, and
 * the time its loop would take for `total` forwards at the rate it ran.
 */
function runBaseline(dir: string, prompts: string, sweep: SweepName, maxPatches: number | undefined, total?: number): { seconds: number; forwards: number } | string {
  const out = join(mkdtempSync(join(tmpdir(), 'tlref-')), 'out.json');
  const args = [
    o.tlref!,
    '--model',
    dir,
    '--input',
    prompts,
    '--sweep',
    sweep,
    '--out',
    out,
    '--dtype',
    'float32',
    '--threads',
    String(Math.min(2, cpus().length)),
    '--full-logits',
  ];
  if (maxPatches !== undefined) args.push('--max-patches', String(maxPatches));
  const core = openblasCore();
  const r = spawnSync('/usr/bin/python3', args, { encoding: 'utf8', env: { ...process.env, ...(core ? { OPENBLAS_CORETYPE: core } : {}) } });
  if (r.status !== 0) return `tlref.py failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`;
  const res = JSON.parse(readFileSync(out, 'utf8')) as { seconds: number; n_forward: number; patch_loop_seconds: number };
  const setup = res.seconds - res.patch_loop_seconds;
  return { seconds: setup + (res.patch_loop_seconds * (total ?? res.n_forward)) / res.n_forward, forwards: res.n_forward };
}

function baselineMissing(): string | undefined {
  if (!existsSync(o.tlref!)) return `${o.tlref} not found (give --tlref PATH)`;
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.status !== 0) return 'PyTorch is not installed: apt-get install python3-torch libopenblas0-openmp';
  return undefined;
}

async function main(): Promise<void> {
  const dir = benchModelDir(shape);
  const { config, weights } = loadCheckpoint(dir);
  const runtime = await Runtime.create(o.device as DeviceSetting);
  const model = new HookedTransformer(config, weights, runtime);
  const sweeps = (o.sweeps ?? DEFAULT_SWEEPS).split(',') as SweepName[];
  const repeats = Number(o.repeats);
  const sampleSize = Number(o.sample);
  const budget = Number(o.budget);
  const tokens = SHAPES[shape].tokens;
  const spec = { name: 'bench', model: undefined, metric: 'logit_diff' as const, sweeps, prependBos: false, pairs: pairs(config.dVocab, tokens) };
  const work = mkdtempSync(join(tmpdir(), 'bench-patching-'));
  const prompts = join(work, 'prompts.json');
  writeFileSync(
    prompts,
    JSON.stringify({ clean: spec.pairs.map((p) => p.clean), corrupted: spec.pairs.map((p) => p.corrupted), answers: spec.pairs.map((p) => [p.answer, p.wrong]) }),
  );
  const missing = o.baseline || o['whole-command'] ? baselineMissing() : undefined;
  if (missing) console.log(`baseline skipped: ${missing}\n`);

  const { problem } = await preparePatching(model, spec, { memoryBudgetMiB: budget });
  const rssReady = peakRssMiB();
  console.log(
    `${shape} shape (L=${config.nLayers}, d_model=${config.dModel}, heads=${config.nHeads}, vocab=${config.dVocab}), random weights, 2 pairs x ${tokens} tokens, provider ${runtime.provider}, memory budget ${budget} MiB`,
  );
  console.log(
    `fast: median of ${repeats}; naive: ${sampleSize} random indices per sweep, timed and scaled to the sweep${o.baseline && !missing ? '; tlref.py: its loop timed on up to 40 indices and scaled, plus its setup' : ''}\n`,
  );

  const rows: string[] = [];
  let fastPeak = rssReady;
  const naiveRuns: (() => Promise<void>)[] = [];
  for (const name of sweeps) {
    const plan = planSweep(name, config, { kind: 'index', n: problem.nPos });
    const patches = plan.slots.map((s) => [s]);
    const n = plan.slots.length;
    const times: number[] = [];
    let fastFlops = 0;
    let fastValues: Float64Array = new Float64Array(0);
    // Each repeat times the fast executor and then tlref.py: the machine's speed drifts over minutes, and
    // paired runs see the same drift.
    const baseTimes: number[] = [];
    let baseFailed = '';
    for (let r = 0; r < repeats; r++) {
      const f0 = model.flops;
      times.push(await timeIt(async () => (fastValues = await executeFast(problem, patches, {}))));
      fastFlops = model.flops - f0;
      fastPeak = Math.max(fastPeak, peakRssMiB());
      if (o.baseline && !missing) {
        const b = runBaseline(
          dir,
          prompts,
          name,
          n > 40 ? 40 : undefined,
          plan.shape.reduce((a, x) => a * x, 1),
        );
        if (typeof b === 'string') baseFailed = b;
        else baseTimes.push(b.seconds);
      }
    }
    const tFast = median(times);
    // The naive loop runs after every fast sweep, so the fast executor's peak memory is read alone.
    naiveRuns.push(async () => {
      const rnd = seededInts(name.length);
      const sample = [...new Set(Array.from({ length: Math.min(sampleSize, n) * 3 }, () => rnd(0, n)))].slice(0, Math.min(sampleSize, n));
      const f0 = model.flops;
      let naiveValues: Float64Array = new Float64Array(0);
      const tSample = await timeIt(
        async () =>
          (naiveValues = await executeNaive(
            problem,
            sample.map((i) => patches[i]!),
            {},
          )),
      );
      const naiveFlops = ((model.flops - f0) * n) / sample.length;
      const tNaive = (tSample * n) / sample.length;
      const diff = Math.max(...sample.map((i, k) => Math.abs(naiveValues[k]! - fastValues[i]!)));
      let base = '';
      if (o.baseline && !missing) {
        const tBase = median(baseTimes);
        base = baseFailed ? ` ${baseFailed} | |` : ` ${tBase.toFixed(1)} s | **${(tBase / tFast).toFixed(1)}x** |`;
      }
      rows.push(
        `| ${name} | ${n} | ${tFast.toFixed(1)} s | ${tNaive.toFixed(1)} s (scaled from ${sample.length}) | ${(tNaive / tFast).toFixed(1)}x |${base} ` +
          `${(fastFlops / 1e12).toFixed(2)} | ${(naiveFlops / 1e12).toFixed(2)} | ${(fastFlops / tFast / 1e9).toFixed(1)} | ${diff.toExponential(1)} |`,
      );
    });
  }
  for (const run of naiveRuns) await run();
  const mm = await matmulGflops(runtime.provider);
  const baseCols = o.baseline && !missing ? ' tlref.py (PyTorch) | fast vs tlref |' : '';
  console.log(`| sweep | indices | fast | naive | speed-up |${baseCols} fast TFLOP | naive TFLOP | fast GFLOP/s | max |fast - naive| on sample |`);
  console.log(`|---|---|---|---|---|${baseCols ? '---|---|' : ''}---|---|---|---|`);
  rows.forEach((r) => console.log(r));
  console.log(`\nplain 2048x2048 MatMul through onnxruntime (${runtime.provider}): ${mm.toFixed(1)} GFLOP/s`);
  console.log(
    `peak RSS: ${rssReady.toFixed(0)} MiB with the model loaded and both runs cached; ${fastPeak.toFixed(0)} MiB at the fast executor's peak (+${(fastPeak - rssReady).toFixed(0)} MiB, budget ${budget} MiB)`,
  );
  await runtime.release();

  if (o['whole-command'] && !missing) {
    // The whole commands a user types, from process start to result file, one sweep each.
    console.log('\n| whole command | sweep | patchlens run | tlref.py | ratio |\n|---|---|---|---|---|');
    for (const name of sweeps) {
      const specFile = join(work, `${name}.patch.json`);
      writeFileSync(
        specFile,
        JSON.stringify({
          name,
          model: dir,
          metric: 'logit_diff',
          sweeps: [name],
          prepend_bos: false,
          pairs: spec.pairs.map((p) => ({ clean_ids: p.clean, corrupted_ids: p.corrupted, answer_id: p.answer, wrong_id: p.wrong })),
        }),
      );
      const cli = resolve(__dirname, '../cli.js');
      const ours = await timeIt(async () => {
        const r = spawnSync(process.execPath, [cli, 'run', specFile, '--out', join(work, 'runs'), '--quiet', '--device', o.device!], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`patchlens run failed: ${r.stderr}`);
      });
      let failed = '';
      const theirs = await timeIt(async () => {
        const b = runBaseline(dir, prompts, name, undefined);
        if (typeof b === 'string') failed = b;
      });
      console.log(
        failed
          ? `| ${shape} | ${name} | ${ours.toFixed(1)} s | ${failed} | |`
          : `| ${shape} | ${name} | ${ours.toFixed(1)} s | ${theirs.toFixed(1)} s | **${(theirs / ours).toFixed(1)}x** |`,
      );
    }
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
