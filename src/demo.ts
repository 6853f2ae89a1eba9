/**
 * `npm run demo`: the TransformerLens activation-patching notebook's experiments, offline, on the
 * built-in induction-2l model (whose circuit is known by construction), written as heatmap PNGs and an
 * index.html into ./patchlens-demo. `--model attn-only-2l` (or another attention-only model) runs the same
 * induction experiments on it, as the notebook does; `--model gpt2` (or another hub id or folder) runs the
 * notebook's speaker experiment. Either goes into ./patchlens-demo/<model>/ so that it leaves the built-in
 * model's pages alone, and needs the hub, a cached copy or a local checkpoint.
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEVICE_SETTINGS, type DeviceSetting, type ProgressParams } from './protocol/engineRpc';
import type { PatchResult } from './protocol/result';
import type { PatchSpec, SweepName } from './protocol/spec';
import { runSpec } from './engine/runSpec';
import { ModelCache, modelDir } from './engine/modelLoader';
import { INDUCTION_2L } from './engine/model/builtin/induction2l';
import { readCheckpointConfig } from './engine/model/checkpoint';
import { modelHasSweep } from './engine/patching/sweeps';
import { isUserError, UserError } from './common/userError';
import { errorMessage } from './common/errorReason';

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
// dist/demo.js and src/demo.ts both sit one level below the repository root.
const EXAMPLES = resolve(__dirname, '..', 'examples');

interface Experiment {
  /** Example spec file under examples/. */
  readonly file: string;
  readonly title: string;
  /** What the corruption does and what to look for, as HTML-safe plain text. */
  readonly story: string;
  /** Replaces the file's sweeps (the file itself stays as it is). */
  readonly sweeps?: SweepName[];
}

const { prevTokenHead: PREV, inductionHead: IND } = INDUCTION_2L;
const PREV_NAME = `L${PREV.layer}H${PREV.head}`;
const IND_NAME = `L${IND.layer}H${IND.head}`;

const INDUCTION_TITLES = [
  'Induction, clean AA vs corrupted AB: every sweep',
  'Corrupted baseline AB (second half new)',
  'Corrupted baseline BA (first half new)',
  'Corrupted baseline BB (a different sequence, repeated)',
  'Corrupted baseline BC (all random)',
];

/** The notebook's induction experiments; on the built-in model the stories name its constructed heads. */
function inductionExperiments(builtin: boolean): Experiment[] {
  const stories = builtin
    ? [
        `Clean: BOS + 20 random tokens A + the same 20 again. Corrupted (AB): the second half is 20 other random tokens, so ` +
          `there is nothing to copy. The model's induction head ${IND_NAME} attends from each token of the second half to the ` +
          `position after that token's first occurrence and copies what it finds; the previous-token head ${PREV_NAME} tells ` +
          `it which position that is. Patching ${IND_NAME}'s output restores the clean log-prob; in AB the first half is ` +
          `unchanged, so ${PREV_NAME} (which only matters for the first half's keys) shows no effect here (see BA and BB). ` +
          `The corrupted baseline is -11.1 rather than -log(50257) = -10.8 because one row of B happens to repeat a token ` +
          `twice in a row (positions 32 and 33): there the induction head copies from the repeat and is confidently wrong.`,
        `The first half is intact, so the clean query, pattern or output of ${IND_NAME} each restore the clean behaviour; clean keys and values do not (the corrupted query finds no match).`,
        `The first half differs, so keys and values both differ from the clean run: only ${IND_NAME}'s output restores. ` +
          `Clean keys or a clean pattern make it attend to the right positions but copy the corrupted tokens there, which is ` +
          `worse than nothing (confidently wrong); patching ${PREV_NAME} does the same through the keys.`,
        `Still an induction pattern, with other tokens: the corrupted run confidently predicts the wrong sequence. ` +
          `${IND_NAME}'s attention pattern is the same as in the clean run, so clean values (and the output) restore; a clean ` +
          `pattern changes nothing, and clean queries or keys alone break the match (the head falls back to BOS, log-prob ` +
          `about -10.8), as does patching ${PREV_NAME}.`,
        `Everything is corrupted: the head needs clean queries, keys and values together, so only its output restores. A clean pattern alone copies the corrupted tokens (worse).`,
      ]
    : [
        `Clean: BOS + 20 random tokens A + the same 20 again. Corrupted (AB): the second half is 20 other random tokens, so ` +
          `there is nothing to copy. A model with induction heads predicts the repeated half from the first; the heads whose ` +
          `clean output restores the clean log-prob are its induction heads, and the positions where the residual stream ` +
          `carries the behaviour show how it flows from the first half to the second.`,
        'The first half is intact, so an induction head\'s clean query, pattern or output each restore the clean behaviour; its clean keys and values do not.',
        'The first half differs, so keys and values differ from the clean run: an induction head\'s output restores; previous-token heads show up through the keys they feed.',
        'Still an induction pattern, with other tokens: an induction head attends where it did in the clean run, so its clean values or output restore and a clean pattern changes little.',
        'Everything is corrupted: an induction head needs clean queries, keys and values together, so only its output restores.',
      ];
  const files = ['induction-demo', 'induction-AB', 'induction-BA', 'induction-BB', 'induction-BC'];
  return files.map((f, i) => ({
    file: `${f}.patch.json`,
    title: INDUCTION_TITLES[i]!,
    story: stories[i]!,
    ...(i > 0 ? { sweeps: ['attn_head_all_pos_every'] as SweepName[] } : {}),
  }));
}

const SPEAKER: Experiment = {
  file: 'speaker.patch.json',
  title: 'Speaker: who is being thanked?',
  story:
    'The notebook\'s speaker pair, corrected to equal token lengths: the corrupted prompt swaps the two speakers, so the answer flips. ' +
    'The metric is the logit difference between " Alice" and " Bob" at the last token.',
};

const SWEEP_NOTES: Partial<Record<SweepName, string>> = {
  resid_pre: 'residual stream at the start of each block, per layer and position',
  attn_head_out_all_pos: 'each head\'s output (hook_z) at all positions at once',
  attn_head_out_by_pos: 'each head\'s output at one position at a time',
  block_every: 'residual stream, attention output and MLP output per layer and position (the MLPs of induction-2l are zero)',
  attn_head_all_pos_every: 'each head\'s output, query, key, value and pattern at all positions at once',
  attn_head_by_pos_every: 'each head\'s output, query, key, value and pattern at one position at a time',
};

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

const escapeHtml = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const fmt = (v: number): string => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(1));

/** Removes what an earlier demo run wrote for these runs, so result files don't pile up as name-2, name-3… */
function clearOld(outDir: string, names: string[]): void {
  let entries: string[];
  try {
    entries = readdirSync(outDir);
  } catch {
    return;
  }
  const ours = (f: string): boolean =>
    names.some((n) =>
      f.startsWith(`${n}.`) ? f.endsWith('.png') || f === `${n}.result.json` : /^-\d+\.result\.json$/.test(f.slice(n.length)) && f.startsWith(n),
    );
  for (const f of entries) if (ours(f)) rmSync(join(outDir, f), { force: true });
}

interface Done {
  readonly exp: Experiment;
  readonly result: PatchResult;
  readonly pngs: string[];
}

function indexHtml(title: string, intro: string, reading: string, runs: Done[], outDir: string): string {
  const sections = runs.map(({ exp, result, pngs }) => {
    const b = result.baselines;
    const ind = result.spec.induction;
    const pair = result.spec.pairs?.[0];
    // JSON quoting shows the prompts' line breaks as \n.
    const corruption = ind
      ? `clean BOS A A vs corrupted BOS ${ind.corrupted.split('').join(' ')}`
      : pair?.clean !== undefined
        ? `clean ${JSON.stringify(pair.clean)} vs corrupted ${JSON.stringify(pair.corrupted ?? '')}`
        : 'clean vs corrupted prompts';
    const shortCorruption = ind ? corruption : 'clean vs corrupted prompt';
    const facts = [
      `spec: examples/${escapeHtml(exp.file)}`,
      escapeHtml(corruption),
      `metric: ${escapeHtml(result.metric)}`,
      b ? `baselines: clean ${fmt(b.clean)}, corrupted ${fmt(b.corrupted)}` : '',
      `model: ${escapeHtml(result.model.id)} (${escapeHtml(result.model.provider ?? 'provider unknown')})`,
    ].filter(Boolean);
    const figures = pngs.map((p) => {
      // <name>.<sweep>.png; sweep names have no dots.
      const sweep = basename(p, '.png').split('.').pop() as SweepName;
      const note = SWEEP_NOTES[sweep] ? ` — ${escapeHtml(SWEEP_NOTES[sweep]!)}` : '';
      const href = escapeHtml(relative(outDir, p).split('\\').join('/'));
      return `<figure><a href="${href}"><img src="${href}" alt="${escapeHtml(`${result.name} ${sweep}`)}"></a>` +
        `<figcaption><b>${escapeHtml(sweep)}</b>${note}. ${escapeHtml(shortCorruption)}; ${escapeHtml(result.metric)}` +
        (b ? `; clean ${fmt(b.clean)}, corrupted ${fmt(b.corrupted)}` : '') + `</figcaption></figure>`;
    });
    return `<section><h2>${escapeHtml(exp.title)}</h2><p>${escapeHtml(exp.story)}</p><p class="facts">${facts.join(' · ')}</p>\n${figures.join('\n')}</section>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.facts { color: #555; font-size: 0.9em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; }
</style></head>
<body><h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(intro)}</p>
<p>Each heatmap cell is the metric of the corrupted run with one activation copied from the clean run (TransformerLens's <code>get_act_patch_*</code>), averaged over the batch; red is above 0, blue below, white 0. ${escapeHtml(reading)}</p>
${sections.join('\n')}
</body></html>
`;
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
  const folder = (local ? basename(resolve(model)) : model).replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[_.]+/, '') || 'model';
  const outDir = builtin ? resolve('patchlens-demo') : resolve('patchlens-demo', folder);
  const names = experiments.map((e) => (JSON.parse(readFileSync(join(EXAMPLES, e.file), 'utf8')) as PatchSpec).name!);
  clearOld(outDir, names);

  const models = new ModelCache();
  const done: Done[] = [];
  try {
    for (const exp of experiments) {
      const specFile = join(EXAMPLES, exp.file);
      const spec = JSON.parse(readFileSync(specFile, 'utf8')) as PatchSpec;
      const label = spec.name ?? exp.file;
      // Sweeps of hooks the model lacks (block_every on an attention-only model) are left out.
      const sweeps = (exp.sweeps ?? spec.sweeps).filter((s) => modelHasSweep(s, cfg));
      process.stderr.write(`${label}: ${sweeps.join(', ')}\n`);
      const outcome = await runSpec(
        {
          runId: label,
          specFile,
          ...(sweeps.length !== spec.sweeps.length || exp.sweeps ? { specText: JSON.stringify({ ...spec, sweeps }, null, 2) } : {}),
          model,
          outDir,
          png: true,
          device: o.device as DeviceSetting,
        },
        { models, progress: progressPrinter(label), log: (m) => process.stderr.write(`${m}\n`) },
      );
      const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
      done.push({ exp, result, pngs: outcome.pngPaths });
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
  // The colour scale is centred on 0, which for a log-prob is the clean run, not "no effect".
  const reading = induction
    ? 'The metric is a log-probability, so every value is at most 0: white (about 0) means the clean behaviour is restored, ' +
      'the corrupted baseline\'s shade of blue means the patch changed nothing, and a darker blue than that means the patch ' +
      'made the prediction worse (confidently wrong).'
    : 'The metric is the logit difference " Alice" minus " Bob": red means the patched run prefers the clean answer, blue the corrupted one.';
  const index = join(outDir, 'index.html');
  writeFileSync(index, indexHtml(title, intro, reading, done, outDir));
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
