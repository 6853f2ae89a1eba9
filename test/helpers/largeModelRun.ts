/**
 * Run in a child process by the large-checkpoint test, so that its peak resident memory is the model's
 * alone: loads the checkpoint folder given as argv[2], notes the peak RSS, runs a resid_pre sweep on one
 * short pair whose prompts differ at position 1 only, and prints one JSON line with the numbers.
 */
import { HookedTransformer } from '../../src/engine/hookedTransformer';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { modelParamCount } from '../../src/engine/model/weights';
import { runPatching } from '../../src/engine/patching/runPatching';
import { Runtime } from '../../src/engine/runtime';

const peakRss = () => process.resourceUsage().maxRSS * 1024;

async function main(dir: string): Promise<void> {
  const t0 = Date.now();
  const { config, weights } = loadCheckpoint(dir);
  const loadSeconds = (Date.now() - t0) / 1000;
  const loadPeakRss = peakRss();
  const model = new HookedTransformer(config, weights, await Runtime.create('cpu'));
  const clean = [config.bosTokenId, 1000, 2000, 3000, 4000];
  const corrupted = [config.bosTokenId, 1001, 2000, 3000, 4000];
  const t1 = Date.now();
  const out = await runPatching(
    model,
    { name: 'large', model: undefined, metric: 'logit_diff', sweeps: ['resid_pre'], prependBos: false, pairs: [{ clean, corrupted, answer: 5000, wrong: 6000 }] },
    { mode: 'fast' },
  );
  const sweep = out.sweeps.resid_pre!;
  process.stdout.write(
    `${JSON.stringify({
      weightsDtype: config.weightsDtype,
      params: modelParamCount(config),
      loadSeconds,
      sweepSeconds: (Date.now() - t1) / 1000,
      loadPeakRss,
      peakRss: peakRss(),
      baselines: out.baselines,
      shape: sweep.shape,
      values: sweep.values,
    })}\n`,
  );
}

void main(process.argv[2]!);
