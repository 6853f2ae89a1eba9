import { HookedTransformer } from '../../src/engine/hookedTransformer';
import type { ModelConfig } from '../../src/engine/model/config';
import { loadGpt2Checkpoint } from '../../src/engine/model/gpt2Checkpoint';
import type { ModelWeights } from '../../src/engine/model/weights';
import { Runtime } from '../../src/engine/runtime';
import { makeTmpDir, type RandomGpt2Options, writeRandomGpt2Checkpoint } from './checkpoint';

export interface TestModel {
  readonly dir: string;
  readonly cfg: ModelConfig;
  readonly weights: ModelWeights;
  readonly model: HookedTransformer;
}

let runtime: Promise<Runtime> | undefined;

/** A random checkpoint written in HF format, loaded back through the real loader onto the CPU engine. */
export async function randomModel(o: RandomGpt2Options): Promise<TestModel> {
  const dir = makeTmpDir(`model-${o.nLayers}l${o.nHeads}h-${o.seed}`);
  writeRandomGpt2Checkpoint(dir, o);
  return loadTestModel(dir);
}

export async function loadTestModel(dir: string): Promise<TestModel> {
  const { config, weights } = loadGpt2Checkpoint(dir);
  runtime ??= Runtime.create('cpu');
  return { dir, cfg: config, weights, model: new HookedTransformer(config, weights, await runtime) };
}

export { seededInts } from '../../src/engine/random';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    // -Infinity (masked attention scores) must match exactly; any NaN is a failure.
    if (a[i] === b[i]) continue;
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}
