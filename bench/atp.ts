// npm run bench:atp [-- --device cpu|webgpu|cuda] [--verify 20] [--repeats 3]
// Attribution patching on the GPT-2-small-shaped random model, 2 prompt pairs of 47 tokens (the
// patching benchmark's shapes), all 19 sweeps: AtP and AtP* cost in forward-pass equivalents (measured
// time over the median forward of the same batch, and FLOPs over a forward's), and their agreement
// with exact patching on each sweep's `verify` largest estimates and as many random others.
import { parseArgs } from 'node:util';
import { runAttribution } from '../src/engine/attribution/runAttribution';
import { HookedTransformer } from '../src/engine/hookedTransformer';
import { loadCheckpoint } from '../src/engine/model/checkpoint';
import { metricRows } from '../src/engine/patching/problem';
import { Metric } from '../src/engine/patching/metrics';
import { Runtime } from '../src/engine/runtime';
import type { DeviceSetting } from '../src/protocol/engineRpc';
import { SWEEP_NAMES, type ResolvedPair } from '../src/protocol/spec';
import { seededInts } from '../test/helpers/models';
import { benchModelDir, median, peakRssMiB, timeIt } from './common';

const { values: o } = parseArgs({ options: { device: { type: 'string', default: 'cpu' }, verify: { type: 'string', default: '20' }, repeats: { type: 'string', default: '3' } } });

function pairs(vocab: number): ResolvedPair[] {
  const rnd = seededInts(47);
  return [0, 1].map(() => {
    const clean = Array.from({ length: 47 }, () => rnd(100, vocab));
    const corrupted = clean.map((t, i) => (i === 3 || i === 17 || i === 40 ? rnd(100, vocab) : t));
    return { clean, corrupted, answer: rnd(100, vocab), wrong: rnd(100, vocab) };
  });
}

async function main(): Promise<void> {
  const { config, weights } = loadCheckpoint(benchModelDir());
  const runtime = await Runtime.create(o.device as DeviceSetting);
  const model = new HookedTransformer(config, weights, runtime);
  const spec = { name: 'bench', model: undefined, metric: 'logit_diff' as const, sweeps: [...SWEEP_NAMES], prependBos: false, pairs: pairs(config.dVocab) };
  const ids = spec.pairs.map((p) => p.corrupted);
  const rows = metricRows({ pairs: spec.pairs, nPos: 47, metric: new Metric('logit_diff', spec.pairs, config.dVocab) }, 1);
  await model.forward(ids, { logitRows: rows });
  const forward: number[] = [];
  for (let i = 0; i < 7; i++) forward.push(await timeIt(() => model.forward(ids, { logitRows: rows })));
  const fwd = median(forward);
  console.log(`GPT-2-small shape, random weights, 2 pairs x 47 tokens, all ${SWEEP_NAMES.length} sweeps, provider ${runtime.provider}`);
  console.log(`forward pass (logits at the metric's positions): ${(fwd * 1000).toFixed(1)} ms (median of 7)\n`);
  console.log('| method | time | forward-pass equivalents (time) | (FLOPs) | verified cells | Spearman (median over sweeps) | largest miss | peak RSS |');
  console.log('|---|---|---|---|---|---|---|---|');
  const agreement: string[] = [];
  for (const method of ['atp', 'atp_star'] as const) {
    const times: number[] = [];
    let fe = 0;
    for (let r = 0; r < Number(o.repeats); r++) {
      times.push(await timeIt(async () => void (fe = (await runAttribution(model, { ...spec, method })).attribution.forwardEquivalents)));
    }
    const t = median(times);
    const v = await runAttribution(model, { ...spec, method, verifyTop: Number(o.verify) });
    const sp: number[] = [];
    let miss = { sweep: '', d: 0, estimate: 0, exact: 0 };
    let cells = 0;
    for (const [name, s] of Object.entries(v.sweeps)) {
      const ver = s!.verification!;
      cells += ver.cells.length;
      if (ver.spearman !== null) sp.push(ver.spearman);
      if (ver.largestMiss && Math.abs(ver.largestMiss.estimate - ver.largestMiss.exact) > miss.d)
        miss = { sweep: name, d: Math.abs(ver.largestMiss.estimate - ver.largestMiss.exact), ...ver.largestMiss };
      agreement.push(
        `| ${method} | ${name} | ${ver.spearman === null ? '–' : ver.spearman.toFixed(3)} | ${ver.largestMiss ? Math.abs(ver.largestMiss.estimate - ver.largestMiss.exact).toExponential(1) : '–'} |`,
      );
    }
    console.log(
      `| ${method} | ${t.toFixed(2)} s | **${(t / fwd).toFixed(1)}** | ${fe.toFixed(1)} | ${cells} (${v.attribution.verifyForwardEquivalents.toFixed(0)} fwd-equiv. of FLOPs) | ${median(sp).toFixed(3)} | ${miss.d.toExponential(1)} (${miss.sweep}: ${miss.estimate.toFixed(3)} vs ${miss.exact.toFixed(3)}) | ${peakRssMiB().toFixed(0)} MiB |`,
    );
  }
  console.log('\n| method | sweep | Spearman | largest miss |\n|---|---|---|---|');
  for (const line of agreement) console.log(line);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
