/**
 * `npm run demo`: the TransformerLens activation-patching notebook's experiments, offline, on the
 * built-in induction-2l model (whose circuit is known by construction), written as heatmap PNGs and an
 * index.html into ./patchlens-demo. `--model attn-only-2l` (or another attention-only model) runs the same
 * induction experiments on it, as the notebook does; `--model gpt2` (or another hub id or folder) runs the
 * notebook's speaker experiment. Either goes into ./patchlens-demo/<model>/ so that it leaves the built-in
 * model's pages alone, and needs the hub, a cached copy or a local checkpoint.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEVICE_SETTINGS, type DeviceSetting, type ProgressParams } from './protocol/engineRpc';
import type { PatchSpec, SweepName } from './protocol/spec';
import { ModelCache, modelDir } from './engine/modelLoader';
import { readCheckpointConfig } from './engine/model/checkpoint';
import { modelHasSweep } from './engine/patching/sweeps';
import { safeFileStem } from './common/fileName';
import { replaceFile } from './common/fileWrite';
import { isUserError, UserError } from './common/userError';
import { errorMessage } from './common/errorReason';
import { type Done, EXAMPLES, IND_NAME, indexHtml, inductionExperiments, PREV_NAME, runExperiment, SPEAKER } from './demoRuns';

const USAGE = `usage: npm run demo [-- --model ID] [-- --device D]

Runs the activation-patching notebook's experiments and writes heatmap PNGs and index.html.
  (no options)     the induction experiments on the built-in induction-2l model (offline),
                   into ./patchlens-demo
  --model ID       a hub id (attn-only-2l, gpt2, EleutherAI/pythia-160m, ...) or a checkpoint folder
                   (needs the Hugging Face hub unless the model is cached or local), into
                   ./patchlens-demo/ID: the induction experiments on an attention-only model, the
                   speaker experiment on any other
  --device D       ${DEVICE_SETTINGS.join('|')} (default cpu; auto tries the GPU providers)`;

const BUILTIN = 'induction-2l';

function progressPrinter(label: string): (p: Omit<ProgressParams, 'runId'>) => void {
  let last = '';
  let lastTime = 0;
  return (p) => {
    const now = Date.now();
    const pct = p.total ? ` ${Math.floor((100 * (p.done ?? 0)) / p.total)}%` : '';
    const line = `${label}: ${p.phase}: ${p.message}${pct}`;
    // A line a second at most while a sweep runs: enough to show life, not enough to flood a terminal.
    if (line === last || (p.phase === 'sweep' && now - lastTime < 1000 && p.done !== p.total)) return;
    last = line;
    lastTime = now;
    process.stderr.write(`${line}\n`);
  };
}

/** Removes what an earlier demo run wrote for these runs, so result files don't pile up as name-2, name-3… */
function clearOld(outDir: string, names: string[]): void {
  let entries: string[];
  try {
    entries = readdirSync(outDir);
  } catch {
    return;
  }
  const ours = (f: string): boolean =>
    names.some((n) => (f.startsWith(`${n}.`) ? f.endsWith('.png') || f === `${n}.result.json` : /^-\d+\.result\.json$/.test(f.slice(n.length)) && f.startsWith(n)));
  for (const f of entries) if (ours(f)) rmSync(join(outDir, f), { force: true });
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { model: { type: 'string' }, device: { type: 'string', default: 'cpu' }, help: { type: 'boolean', short: 'h', default: false } },
    });
  } catch (e) {
    throw new UserError(`${errorMessage(e)}; run 'npm run demo -- --help' for the options`);
  }
  const o = parsed.values;
  if (o.help) {
    console.log(USAGE);
    return 0;
  }
  if (!(DEVICE_SETTINGS as readonly string[]).includes(o.device!)) {
    throw new UserError(`unknown device '${o.device}'; use one of ${DEVICE_SETTINGS.join(', ')}`);
  }
  const model = o.model ?? BUILTIN;
  const builtin = model === BUILTIN;
  // The model first (downloaded if need be): its config says which experiments it can run.
  const dir = await modelDir({ source: model, settings: {} });
  const { config } = readCheckpointConfig(dir);
  const cfg = { ...config, weightsDtype: 'F32' };
  // The notebook runs its induction experiments on attn-only-2l, an attention-only model.
  const induction = builtin || config.attnOnly;
  const experiments = induction ? inductionExperiments(builtin) : [SPEAKER];
  // A hub id names its own folder (openai-community/gpt2 → openai-community_gpt2), a local folder by its last part.
  const local = isAbsolute(model) || model.startsWith('.');
  const folder = safeFileStem(local ? basename(resolve(model)) : model);
  const outDir = builtin ? resolve('patchlens-demo') : resolve('patchlens-demo', folder);
  const names = experiments.map((e) => (JSON.parse(readFileSync(join(EXAMPLES, e.file), 'utf8')) as PatchSpec).name!);
  clearOld(outDir, names);

  const models = new ModelCache();
  const done: Done[] = [];
  try {
    for (const exp of experiments) {
      const spec = JSON.parse(readFileSync(join(EXAMPLES, exp.file), 'utf8')) as PatchSpec;
      const label = spec.name ?? exp.file;
      const hasSweep = (s: SweepName) => modelHasSweep(s, cfg);
      process.stderr.write(`${label}: ${(exp.sweeps ?? spec.sweeps ?? []).filter(hasSweep).join(', ')}\n`);
      done.push(
        await runExperiment(exp, {
          model,
          outDir,
          device: o.device as DeviceSetting,
          models,
          hasSweep,
          progress: progressPrinter(label),
          log: (m) => process.stderr.write(`${m}\n`),
        }),
      );
    }
  } finally {
    await models.release();
  }

  const title = `PatchLens demo: ${induction ? 'induction' : 'speaker'} on ${model}`;
  const intro = builtin
    ? `induction-2l is a 2-layer attention-only model whose weights are constructed, not trained: a previous-token head ${PREV_NAME} ` +
      `and an induction head ${IND_NAME}, plus distractor heads with small random weights (src/engine/model/builtin/induction2l.ts). ` +
      `These are the induction experiments of TransformerLens's "Activation Patching in TransformerLens" notebook, run on it.`
    : `The ${induction ? 'induction experiments' : 'speaker experiment'} of TransformerLens's "Activation Patching in TransformerLens" notebook on ${model}.`;
  const reading = induction
    ? "The metric is the mean log-probability of the clean second half's next tokens: about 0 when the model copies the repeated half, " +
      'about -log(vocabulary size) when it cannot. Blue here means the patch made the prediction worse than the corrupted run: confidently wrong.'
    : 'The metric is the logit difference " Alice" minus " Bob": red means the patched run prefers the clean answer as the clean run does, blue that it prefers the corrupted one even more than the corrupted run.';
  const index = join(outDir, 'index.html');
  replaceFile(index, indexHtml(title, intro, reading, done, outDir));
  const pngCount = done.reduce((n, d) => n + d.pngs.length, 0);
  console.log(`${pngCount} heatmaps and ${done.length} result file${done.length === 1 ? '' : 's'} in ${outDir}`);
  console.log(`open ${index}`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isUserError(e)) {
      console.error(`patchlens demo: ${e.message}`);
      process.exit(1);
    }
    console.error('patchlens demo: internal error (please report it):', e);
    process.exit(70);
  },
);
