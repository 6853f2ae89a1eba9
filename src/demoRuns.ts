/**
 * The demo's experiments (TransformerLens's activation-patching notebook), how one is run into PNGs and
 * a result file, and the index.html that shows them with captions. src/demo.ts is the command.
 */
import { readFileSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import type { DeviceSetting, ProgressParams } from './protocol/engineRpc';
import type { PatchResult } from './protocol/result';
import type { PatchSpec, SweepName } from './protocol/spec';
import { runSpec } from './engine/runSpec';
import type { ModelCache } from './engine/modelLoader';
import { INDUCTION_2L } from './engine/model/builtin/induction2l';
import { sweepScale } from './presentation/colorScale';
import { layoutSweep } from './presentation/heatmapLayout';
import { headGroups } from './presentation/heads';
import { baselinesText } from './presentation/resultText';
import { topEffects } from './presentation/topEffects';

// dist/demo.js and src/demoRuns.ts both sit one level below the repository root.
export const EXAMPLES = resolve(__dirname, '..', 'examples');

export interface Experiment {
  /** Example spec file under examples/. */
  readonly file: string;
  readonly title: string;
  /** What the corruption does and what to look for, as HTML-safe plain text. */
  readonly story: string;
  /** Replaces the file's sweeps (the file itself stays as it is). */
  readonly sweeps?: SweepName[];
}

const { prevTokenHead: PREV, inductionHead: IND } = INDUCTION_2L;
export const PREV_NAME = `L${PREV.layer}H${PREV.head}`;
export const IND_NAME = `L${IND.layer}H${IND.head}`;

const INDUCTION_TITLES = [
  'Induction, clean AA vs corrupted AB: every sweep',
  'Corrupted baseline AB (second half new)',
  'Corrupted baseline BA (first half new)',
  'Corrupted baseline BB (a different sequence, repeated)',
  'Corrupted baseline BC (all random)',
];

/** The notebook's induction experiments; on the built-in model the stories name its constructed heads. */
export function inductionExperiments(builtin: boolean): Experiment[] {
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
        "The first half is intact, so an induction head's clean query, pattern or output each restore the clean behaviour; its clean keys and values do not.",
        "The first half differs, so keys and values differ from the clean run: an induction head's output restores; previous-token heads show up through the keys they feed.",
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

export const SPEAKER: Experiment = {
  file: 'speaker.patch.json',
  title: 'Speaker: who is being thanked?',
  story:
    "The notebook's speaker pair, corrected to equal token lengths: the corrupted prompt swaps the two speakers, so the answer flips. " +
    'The metric is the logit difference between " Alice" and " Bob" at the last token.',
};

const SWEEP_NOTES: Partial<Record<SweepName, string>> = {
  resid_pre: 'residual stream at the start of each block, per layer and position',
  attn_head_out_all_pos: "each head's output (hook_z) at all positions at once",
  attn_head_out_by_pos: "each head's output at one position at a time",
  block_every: 'residual stream, attention output and MLP output per layer and position (the MLPs of induction-2l are zero)',
  attn_head_all_pos_every: "each head's output, query, key, value and pattern at all positions at once",
  attn_head_by_pos_every: "each head's output, query, key, value and pattern at one position at a time",
};

const escapeHtml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const fmt = (v: number): string => (Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(2) : v.toExponential(1));

export interface Done {
  readonly exp: Experiment;
  readonly result: PatchResult;
  readonly pngs: string[];
}

/** The strongest effects of a sweep, as the panel lists them (top three). */
function strongest(result: PatchResult, sweep: SweepName): string {
  const data = result.sweeps[sweep];
  if (!data) return '';
  const tokens = result.tokens[0]?.clean.strings ?? [];
  const heads = headGroups(result.model.config);
  const top = topEffects(data, layoutSweep(data, { tokens, heads }), sweepScale(result, data.values), tokens, heads, 3);
  return top.length === 0 ? '' : ` Strongest: ${top.map((e) => `${escapeHtml(e.name)} ${escapeHtml(e.amount)}`).join('; ')}.`;
}

export function indexHtml(title: string, intro: string, reading: string, runs: Done[], outDir: string): string {
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
      b ? `baselines: ${baselinesText(b, fmt)}` : '',
      `model: ${escapeHtml(result.model.id)} (${escapeHtml(result.model.provider ?? 'provider unknown')})`,
    ].filter(Boolean);
    const figures = pngs.map((p) => {
      // <name>.<sweep>.png; sweep names have no dots.
      const sweep = basename(p, '.png').split('.').pop() as SweepName;
      const note = SWEEP_NOTES[sweep] ? ` — ${escapeHtml(SWEEP_NOTES[sweep]!)}` : '';
      const href = escapeHtml(relative(outDir, p).split('\\').join('/'));
      return (
        `<figure><a href="${href}"><img src="${href}" alt="${escapeHtml(`${result.name} ${sweep}`)}"></a>` +
        `<figcaption><b>${escapeHtml(sweep)}</b>${note}. ${escapeHtml(shortCorruption)}; ${escapeHtml(result.metric)}` +
        (b ? `; ${baselinesText(b, fmt)}` : '') +
        `.${strongest(result, sweep)}</figcaption></figure>`
      );
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
<p>Each heatmap cell is the metric of the corrupted run with one activation copied from the clean run (TransformerLens's <code>get_act_patch_*</code>), averaged over the batch.
White means the patch changes nothing (the corrupted baseline); the redder a cell, the more of the clean behaviour that one patch restores, full red being all of it; the colour bar marks both baselines. ${escapeHtml(reading)}</p>
${sections.join('\n')}
</body></html>
`;
}

export interface RunOptions {
  readonly model: string;
  /** Sweeps the model has a hook for (an attention-only model has no block_every); default all. */
  readonly hasSweep?: (sweep: SweepName) => boolean;
  readonly outDir: string;
  readonly device: DeviceSetting;
  readonly models: ModelCache;
  readonly progress?: (p: Omit<ProgressParams, 'runId'>) => void;
  readonly log?: (message: string) => void;
}

/** Runs one experiment as the demo does: its example spec (with the experiment's sweeps), PNGs included. */
export async function runExperiment(exp: Experiment, opts: RunOptions): Promise<Done> {
  const specFile = join(EXAMPLES, exp.file);
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as PatchSpec;
  const label = spec.name ?? exp.file;
  // Sweeps of hooks the model lacks (block_every on an attention-only model) are left out.
  const sweeps = (exp.sweeps ?? spec.sweeps ?? []).filter((s) => opts.hasSweep?.(s) ?? true);
  const outcome = await runSpec(
    {
      runId: label,
      specFile,
      ...(sweeps.length !== (spec.sweeps ?? []).length || exp.sweeps ? { specText: JSON.stringify({ ...spec, sweeps }, null, 2) } : {}),
      model: opts.model,
      outDir: opts.outDir,
      png: true,
      device: opts.device,
    },
    { models: opts.models, ...(opts.progress ? { progress: opts.progress } : {}), ...(opts.log ? { log: opts.log } : {}) },
  );
  const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
  return { exp, result, pngs: outcome.pngPaths };
}
