import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../src/engine/graph/graphBuilder';
import { DataType } from '../src/engine/graph/onnxProto';
import type { DeviceSetting } from '../src/protocol/engineRpc';
import { writeRandomGpt2Checkpoint } from '../test/helpers/checkpoint';

/**
 * The benchmark shapes, with random weights (real weights cannot be downloaded here): GPT-2 small, and a
 * small model whose 50,257-token unembedding costs more than a block (where per-run overheads show).
 */
export const SHAPES = {
  'gpt2-small': { model: { nLayers: 12, nHeads: 12, dModel: 768, dVocab: 50257, nCtx: 1024, seed: 7, scale: 0.02 }, tokens: 47 },
  small: { model: { nLayers: 6, nHeads: 8, dModel: 256, dVocab: 50257, nCtx: 64, seed: 8, scale: 0.02 }, tokens: 24 },
} as const;
export type ShapeName = keyof typeof SHAPES;

const cacheDir = (shape: ShapeName) => resolve(__dirname, `../../.bench-cache/${shape}-random`);

/**
 * The benchmark model's folder, written once by a child process so that generating 500 MB of random
 * weights never counts towards the benchmark's own peak memory.
 */
export function benchModelDir(shape: ShapeName = 'gpt2-small'): string {
  const dir = cacheDir(shape);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    console.log(`writing a random ${shape}-shaped checkpoint to ${dir} (once)...`);
    const r = spawnSync(process.execPath, [__filename, '--write-model', shape], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('could not write the benchmark model');
  }
  return dir;
}

const writeAt = process.argv.indexOf('--write-model');
if (writeAt >= 0) {
  const shape = process.argv[writeAt + 1] as ShapeName;
  writeRandomGpt2Checkpoint(cacheDir(shape), SHAPES[shape].model);
  process.exit(0);
}

export function parseDevice(argv: string[]): DeviceSetting {
  const i = argv.indexOf('--device');
  return (i >= 0 ? argv[i + 1] : 'cpu') as DeviceSetting;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/**
 * The machine's practical ceiling: GFLOP/s of one large float32 MatMul through onnxruntime with the
 * same provider, median of `repeats` runs after a warm-up.
 */
export async function matmulGflops(provider: string, n = 2048, repeats = 5): Promise<number> {
  const g = new GraphBuilder();
  const a = g.input('a', DataType.FLOAT, [n, n]);
  const b = g.input('b', DataType.FLOAT, [n, n]);
  g.output('c', g.op('MatMul', [a, b]), DataType.FLOAT, [n, n]);
  const s = await ort.InferenceSession.create(g.build('matmul'), { executionProviders: [provider] });
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const feeds = { a: new ort.Tensor('float32', data, [n, n]), b: new ort.Tensor('float32', data, [n, n]) };
  await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) times.push(await timeIt(() => s.run(feeds)));
  await s.release();
  return (2 * n ** 3) / median(times) / 1e9;
}

export const peakRssMiB = (): number => process.resourceUsage().maxRSS / 1024;
