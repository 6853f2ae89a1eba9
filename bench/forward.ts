// npm run bench:forward [-- --device cpu|webgpu|cuda]: forward-pass speed and memory of the engine on a
// GPT-2-small-shaped random model, against the plain MatMul rate of the same machine and provider.
import { HookedTransformer } from '../src/engine/hookedTransformer';
import { modelParamCount } from '../src/engine/model/weights';
import { loadCheckpoint } from '../src/engine/model/checkpoint';
import { Runtime } from '../src/engine/runtime';
import { benchModelDir, matmulGflops, median, parseDevice, peakRssMiB, timeIt } from './common';

async function main(): Promise<void> {
  const device = parseDevice(process.argv);
  const dir = benchModelDir();
  const rssBefore = peakRssMiB();
  const { config, weights } = loadCheckpoint(dir);
  const runtime = await Runtime.create(device);
  const model = new HookedTransformer(config, weights, runtime);
  const weightMiB = (modelParamCount(config) * 4) / 2 ** 20;
  const P = 47;
  const REPEATS = 7;
  console.log(
    `model: GPT-2-small shape (L=${config.nLayers}, d_model=${config.dModel}, heads=${config.nHeads}, vocab=${config.dVocab}), random weights, provider ${runtime.provider}`,
  );
  const rows: string[] = [];
  let batchedGflops = 0;
  for (const B of [1, 16]) {
    const ids = Array.from({ length: B }, (_, b) => Array.from({ length: P }, (_, p) => (b * 131 + p * 977) % config.dVocab));
    await model.forward(ids);
    const times: number[] = [];
    for (let i = 0; i < REPEATS; i++) times.push(await timeIt(() => model.forward(ids)));
    const t = median(times);
    const f0 = model.flops;
    await model.forward(ids);
    const flops = model.flops - f0;
    const gflops = flops / t / 1e9;
    if (B === 16) batchedGflops = gflops;
    rows.push(`| ${B} x ${P} | ${(t * 1000).toFixed(1)} ms | ${(flops / 1e9).toFixed(1)} | ${gflops.toFixed(1)} |`);
  }
  const peak = peakRssMiB();
  const mm = await matmulGflops(runtime.provider);
  console.log('\n| batch x tokens | forward (median of 7) | GFLOP | GFLOP/s |\n|---|---|---|---|');
  rows.forEach((r) => console.log(r));
  console.log(`\nplain 2048x2048 MatMul through onnxruntime (${runtime.provider}): ${mm.toFixed(1)} GFLOP/s`);
  console.log(`batched forward / MatMul rate: ${((100 * batchedGflops) / mm).toFixed(0)}%`);
  console.log(
    `peak RSS: ${peak.toFixed(0)} MiB (process before loading: ${rssBefore.toFixed(0)} MiB); float32 weights ${weightMiB.toFixed(0)} MiB; ratio ${(peak / weightMiB).toFixed(2)}x`,
  );
  await runtime.release();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
