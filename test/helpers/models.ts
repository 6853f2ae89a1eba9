import { HookedTransformer } from '../../src/engine/hookedTransformer';
import type { ModelConfig } from '../../src/engine/model/config';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import type { ModelWeights } from '../../src/engine/model/weights';
import { Runtime } from '../../src/engine/runtime';
import type { RefModel } from './reference';
import { loadReferenceModel } from './referenceModels';
import { makeTmpDir, type RandomGpt2Options, writeRandomGpt2Checkpoint } from './checkpoint';

export interface TestModel {
  readonly dir: string;
  readonly cfg: ModelConfig;
  readonly weights: ModelWeights;
  readonly model: HookedTransformer;
  /** The same checkpoint in the float64 reference, read by its own adapter. */
  readonly ref: RefModel;
}

let runtime: Promise<Runtime> | undefined;

/** A random checkpoint written in HF format, loaded back through the real loader onto the CPU engine. */
export async function randomModel(o: RandomGpt2Options): Promise<TestModel> {
  const dir = makeTmpDir(`model-${o.nLayers}l${o.nHeads}h-${o.seed}`);
  writeRandomGpt2Checkpoint(dir, o);
  return loadTestModel(dir);
}

export async function loadTestModel(dir: string): Promise<TestModel> {
  const { config, weights } = loadCheckpoint(dir);
  runtime ??= Runtime.create('cpu');
  return { dir, cfg: config, weights, model: new HookedTransformer(config, weights, await runtime), ref: loadReferenceModel(dir) };
}

export { seededInts } from '../../src/engine/random';

/**
 * Largest |a - b|. An index the model lacks is null in the engine's results and NaN in the reference's:
 * those must meet each other; any other NaN, or a null against a number, counts as Infinity.
 */
export function maxAbsDiff(a: ArrayLike<number | null>, b: ArrayLike<number | null>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] === null || b[i] === null) {
      const other = a[i] === null ? b[i] : a[i];
      if (other !== null && !Number.isNaN(other)) return Infinity;
      continue;
    }
    const d = Math.abs(a[i]! - b[i]!);
    // -Infinity (masked attention scores) must match exactly; any NaN is a failure.
    if (a[i] === b[i]) continue;
    m = Math.max(m, Number.isNaN(d) ? Infinity : d);
  }
  return m;
}
