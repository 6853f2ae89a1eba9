/**
 * The `.patch.json` format and its resolved form. This module crosses process boundaries (extension
 * host, engine, webview), so it holds types, constants and pure functions only: no Node or vscode
 * imports. The JSON schema that VS Code validates against is schemas/patch.schema.json; a unit test
 * keeps the two in step.
 */

/** TransformerLens's `get_act_patch_*` sweeps (README, Sweeps; adding one: docs/ARCHITECTURE.md). */
export const SWEEP_NAMES = [
  'resid_pre',
  'resid_mid',
  'resid_post',
  'attn_out',
  'mlp_out',
  'attn_head_out_all_pos',
  'attn_head_q_all_pos',
  'attn_head_k_all_pos',
  'attn_head_v_all_pos',
  'attn_head_pattern_all_pos',
  'attn_head_out_by_pos',
  'attn_head_q_by_pos',
  'attn_head_k_by_pos',
  'attn_head_v_by_pos',
  'attn_head_pattern_by_pos',
  'attn_head_pattern_dest_src_pos',
  'block_every',
  'attn_head_all_pos_every',
  'attn_head_by_pos_every',
] as const;
export type SweepName = (typeof SWEEP_NAMES)[number];

/** The result's key for path patching's heatmap, beside the sweeps'. */
export const PATH_PATCHING_SWEEP = 'path_patching';
/** What a result file's `sweeps` are keyed by: the spec's sweeps, and path patching's heatmap. */
export type ResultSweepName = SweepName | typeof PATH_PATCHING_SWEEP;
export const RESULT_SWEEP_NAMES: readonly ResultSweepName[] = [...SWEEP_NAMES, PATH_PATCHING_SWEEP];

/** Path patching's receiver that is the final residual stream (what the unembedding reads). */
export const RESID_FINAL = 'resid_final';
/** A receiver: a head's query, key or value input (`L9H6.q`; for k and v the head counts key/value heads). */
export const PATH_RECEIVER_PATTERN = '^L(0|[1-9][0-9]*)H(0|[1-9][0-9]*)\\.(q|k|v)$';
/** A sender: a head's output (`L5H1`). */
export const PATH_SENDER_PATTERN = '^L(0|[1-9][0-9]*)H(0|[1-9][0-9]*)$';

/**
 * Path patching (Wang et al. 2022, ARENA's formulation): each head's output from the source, every other
 * head frozen, MLPs recomputed, the effect measured through the receivers only; one value per head.
 */
export interface PathPatchingSpec {
  /** Heads' inputs (`["L9H6.q", "L9H9.k"]`) or "resid_final". */
  receivers: string[] | typeof RESID_FINAL;
  /** A set of senders (heads' outputs, `L5H1`) patched together, reported besides the heatmap of single heads. */
  senders?: string[];
}

export const METRIC_NAMES = ['logit_diff', 'normalized_logit_diff', 'answer_logprob', 'kl_divergence', 'answer_prob'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];

/** Metrics that compare an answer token with a wrong one, so every pair needs both. */
export const LOGIT_DIFF_METRICS: readonly MetricName[] = ['logit_diff', 'normalized_logit_diff'];
/** Metrics that read the probability of given tokens: an answer (at the last position) or targets. */
export const TARGET_METRICS: readonly MetricName[] = ['answer_logprob', 'answer_prob'];
/** Metrics an induction spec can use: it has target tokens, not an answer/wrong pair. */
export const INDUCTION_METRICS: readonly MetricName[] = ['answer_logprob', 'kl_divergence', 'answer_prob'];

/**
 * How a run computes its sweeps: `exact` patching (TransformerLens's semantics), or attribution patching's
 * first-order estimates: `atp` (Nanda's AtP) or `atp_star` (AtP* of Kramár et al. 2024: the query/key fix
 * and GradDrop). The estimates follow the spec's `direction`, as the exact sweeps do.
 */
export const METHOD_NAMES = ['exact', 'atp', 'atp_star'] as const;
export type MethodName = (typeof METHOD_NAMES)[number];
export const ATP_METHODS: readonly MethodName[] = ['atp', 'atp_star'];

/**
 * Which way activations flow. `denoising` (TransformerLens's convention): the clean run's activations
 * are written into the corrupted run, and a patch that restores the clean behaviour scores high.
 * `noising`: the corrupted run's are written into the clean run, and a patch that breaks the behaviour
 * scores high on the normalised metric.
 */
export const DIRECTION_NAMES = ['denoising', 'noising'] as const;
export type Direction = (typeof DIRECTION_NAMES)[number];

/**
 * Ablations: the clean run with an activation replaced by zeros, or by its mean over the dataset's
 * clean runs (at each position, or over every position of every pair). No corrupted prompt is needed.
 */
export const ABLATION_NAMES = ['zero', 'mean', 'mean_over_positions'] as const;
export type Ablation = (typeof ABLATION_NAMES)[number];

/**
 * The run a patch goes into and where the written values come from, in words ('the corrupted run',
 * 'the clean run', …): what the result file's `direction` and `ablation` mean.
 */
export function patchFlow(direction: Direction | undefined, ablation: Ablation | undefined): { into: 'clean' | 'corrupted'; from: 'clean' | 'corrupted' | Ablation } {
  if (ablation) return { into: 'clean', from: ablation };
  return direction === 'noising' ? { into: 'clean', from: 'corrupted' } : { into: 'corrupted', from: 'clean' };
}

export const SPEC_FILE_SUFFIX = '.patch.json';

/** A spec larger than this is refused before parsing: prompts are small, and a runaway file should not hang the editor. */
export const MAX_SPEC_CHARS = 10 * 1024 * 1024;

/** A dataset file larger than this is refused before reading: hundreds of thousands of templated pairs fit. */
export const MAX_DATASET_BYTES = 64 * 1024 * 1024;

/** A label a pair may give a position: `[IO]Mary[/IO]` in a prompt, or a key of `positions`. */
export const LABEL_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type InductionPattern = 'AB' | 'BA' | 'BB' | 'BC';
export const INDUCTION_PATTERNS: readonly InductionPattern[] = ['AB', 'BA', 'BB', 'BC'];

/** Defaults of the TransformerLens induction demo (`torch.randint(100, 10000, (4, 20))`). */
export const INDUCTION_DEFAULTS = { token_range: [100, 10000] as [number, number], length: 20, batch: 4 } as const;

export interface TargetSpec {
  /** Position in the final token sequence (BOS counted when prepended); the logits there predict `token_id`. */
  pos: number;
  token_id: number;
}

/**
 * One clean/corrupted pair. Prompts are either both text (`clean`, `corrupted`) or both token ids
 * (`clean_ids`, `corrupted_ids`, taken as is: no BOS is added to ids). Each answer is text that must
 * be exactly one token (`answer`, `wrong`) or an id (`answer_id`, `wrong_id`).
 */
export interface PairSpec {
  clean?: string;
  corrupted?: string;
  clean_ids?: number[];
  corrupted_ids?: number[];
  answer?: string;
  wrong?: string;
  answer_id?: number;
  wrong_id?: number;
  /** For answer_logprob / answer_prob (token log-probs at given positions) and kl_divergence (positions only). */
  targets?: TargetSpec[];
  /**
   * Named positions (BOS counted when prepended): `{"IO": 2, "END": 14}`, or several positions for one
   * label. Text prompts may mark them instead: `[IO]Mary[/IO]` labels the tokens the marked text covers.
   */
  positions?: Record<string, number | number[]>;
}

/**
 * The TransformerLens induction demo, declaratively: each batch row is one pair whose clean sequence is
 * BOS + A + A (A = `length` random tokens in [token_range[0], token_range[1])), corrupted by `corrupted`:
 * AB = BOS+A+B, BA = BOS+B+A, BB = BOS+B+B, BC = BOS+B+C. Targets: the clean second half's next tokens.
 */
export interface InductionSpec {
  seed: number;
  token_range?: [number, number];
  length?: number;
  batch?: number;
  corrupted: InductionPattern;
}

/** Where the colour scale's neutral (white) value sits: a baseline, zero, or a number in the metric's units. */
export type PlotCenter = 'corrupted' | 'clean' | 'zero' | number;
/** An end of the colour scale: a number in the metric's units, a baseline, or 'auto' (the metric's default). */
export type PlotEnd = number | 'clean' | 'corrupted' | 'auto';
export const PLOT_CENTERS = ['corrupted', 'clean', 'zero'] as const;
export const PLOT_ENDS = ['clean', 'corrupted', 'auto'] as const;

/**
 * How the heatmaps are coloured, as the seed notebook sets it per plot (`zmin=-1, zmax=1` for the
 * normalized logit difference; `zmax=` the clean baseline for the induction loss). Every field is
 * optional; src/presentation/colorScale.ts has the defaults per metric.
 */
export interface PlotSpec {
  center?: PlotCenter;
  zmin?: PlotEnd;
  zmax?: PlotEnd;
}

const isPlotCenter = (v: unknown): v is PlotCenter => (typeof v === 'number' && Number.isFinite(v)) || (PLOT_CENTERS as readonly unknown[]).includes(v);
const isPlotEnd = (v: unknown): v is PlotEnd => (typeof v === 'number' && Number.isFinite(v)) || (PLOT_ENDS as readonly unknown[]).includes(v);
const shown = (v: unknown): string =>
  typeof v === 'string'
    ? JSON.stringify(v.length > 30 ? `${v.slice(0, 29)}…` : v)
    : Array.isArray(v)
      ? 'a list'
      : v === null
        ? 'null'
        : typeof v === 'object'
          ? 'an object'
          : String(v);

/**
 * What is wrong with a `plot` value (the key it concerns and a sentence with the fix), or undefined
 * when it is a PlotSpec. Shared by the spec check (which points at the key in the file) and the panel,
 * which reads `plot` from result files that anyone may have edited.
 */
export function plotProblem(plot: unknown): { key?: keyof PlotSpec; message: string } | undefined {
  if (plot === undefined) return undefined;
  if (plot === null || typeof plot !== 'object' || Array.isArray(plot)) return { message: `plot must be an object such as {"zmin": -1, "zmax": 1}, not ${shown(plot)}` };
  const p = plot as Record<string, unknown>;
  const unknown = Object.keys(p).find((k) => !['center', 'zmin', 'zmax'].includes(k));
  if (unknown !== undefined) return { message: `plot has an unknown key ${JSON.stringify(unknown)}; use center, zmin or zmax` };
  if (p.center !== undefined && !isPlotCenter(p.center)) return { key: 'center', message: `plot.center is ${shown(p.center)}; use "corrupted", "clean", "zero" or a number` };
  for (const key of ['zmin', 'zmax'] as const) {
    if (p[key] !== undefined && !isPlotEnd(p[key])) return { key, message: `plot.${key} is ${shown(p[key])}; use a number, "clean", "corrupted" or "auto"` };
  }
  const { center, zmin, zmax } = p as PlotSpec;
  if (typeof zmin === 'number' && typeof zmax === 'number' && !(zmin < zmax)) return { key: 'zmin', message: `plot.zmin (${zmin}) must be below plot.zmax (${zmax}); swap them` };
  if (typeof zmin === 'string' && zmin !== 'auto' && zmin === zmax)
    return { key: 'zmax', message: `plot.zmin and plot.zmax are both "${zmin}", which leaves no range; set one of them to "auto" or to the other baseline` };
  if (typeof center === 'number' && typeof zmin === 'number' && center < zmin)
    return { key: 'center', message: `plot.center (${center}) is below plot.zmin (${zmin}); the white value must lie within the scale: lower center or zmin` };
  if (typeof center === 'number' && typeof zmax === 'number' && center > zmax)
    return { key: 'center', message: `plot.center (${center}) is above plot.zmax (${zmax}); the white value must lie within the scale: raise zmax or lower center` };
  return undefined;
}

/** Components patched together, reported as one value: how much of the behaviour a candidate circuit carries. */
export interface PatchSetSpec {
  name: string;
  /** Component names (src/protocol/components.ts): `L9H6`, `L9H6.q`, `L3.mlp_out@END`, … */
  components: string[];
}

export interface PatchSpec {
  /** Lets editors find the schema; ignored otherwise. */
  $schema?: string;
  name?: string;
  /** A Hugging Face hub id, a built-in model, or a folder path relative to the spec file. */
  model?: string;
  /** Prepend the model's BOS to text prompts (default: the model's default_prepend_bos, as TransformerLens's to_tokens). */
  prepend_bos?: boolean;
  metric: MetricName;
  /** No repeats; may be left out when the spec has patch sets or path_patching. */
  sweeps?: SweepName[];
  /** Exactly one of `pairs`, `dataset` and `induction`. */
  pairs?: PairSpec[];
  /** A JSONL or CSV file of pairs, relative to the spec file. */
  dataset?: string;
  induction?: InductionSpec;
  description?: string;
  plot?: PlotSpec;
  /** Default 'exact'. */
  method?: MethodName;
  /** With an attribution method: exact patching of the k slots of largest |estimate| and k random others, per sweep. */
  verify_top?: number;
  /** Default 'denoising'. */
  direction?: Direction;
  /** Instead of a corrupted prompt: the clean run with activations zeroed or set to their mean. */
  ablation?: Ablation;
  patch_sets?: PatchSetSpec[];
  path_patching?: PathPatchingSpec;
}

/**
 * A prompt string and where it sits in the document it came from. `offset` is the document offset of
 * the prompt's first character (for a JSON string literal: its first content character). When the
 * document text differs from the prompt character for character (JSON escapes such as `\n` or `\"`,
 * or CRLF line ends normalised to LF), `offsets[i]` is the document offset of prompt character i, with
 * one extra entry for the end; otherwise `offset + i` is exact and `offsets` is absent.
 */
export interface SourceText {
  text: string;
  offset: number;
  offsets?: number[];
}

/** Document offset of prompt character index `i` (0 ≤ i ≤ text.length). */
export function sourceOffset(src: SourceText, i: number): number {
  return src.offsets ? src.offsets[Math.max(0, Math.min(i, src.offsets.length - 1))]! : src.offset + i;
}

/** A [start, end) range in the prompt string as a [start, end) range in the document. */
export function toDocumentRange(src: SourceText, range: readonly [number, number]): [number, number] {
  return [sourceOffset(src, range[0]), sourceOffset(src, range[1])];
}

export interface ResolvedTarget {
  /** Position whose logits are read (0-based, BOS included). */
  pos: number;
  token: number;
}

export interface ResolvedPair {
  /** Token ids as the model sees them, BOS included when prepended. Same length as `corrupted`. */
  clean: number[];
  corrupted: number[];
  answer?: number;
  wrong?: number;
  /**
   * Positions and tokens to score. Absent for answer metrics: they read `answer` (and `wrong`) at the
   * last position. For kl_divergence, only `pos` matters.
   */
  targets?: ResolvedTarget[];
  /**
   * Per token, its [start, end) UTF-16 range: in the document when `cleanSource` is present (JSON
   * escapes already accounted for), else in the prompt string. null for BOS and for tokens given as
   * ids. Absent when the prompt was given as ids or generated.
   */
  cleanRanges?: ([number, number] | null)[];
  corruptedRanges?: ([number, number] | null)[];
  cleanSource?: SourceText;
  corruptedSource?: SourceText;
  /** Labelled positions (ascending, BOS counted), when the pairs name them: every pair names the same labels. */
  labels?: Record<string, number[]>;
}

/** What the engine consumes: every default applied, every token checked against the model. */
export interface ResolvedSpec {
  name: string;
  model: string | undefined;
  metric: MetricName;
  sweeps: SweepName[];
  prependBos: boolean;
  pairs: ResolvedPair[];
  /** The pairs' labels in the order of the first pair's, when they name positions: position-wise sweeps then run over them. */
  labels?: string[];
  /** Absent: exact. */
  method?: MethodName;
  /** Absent: no verification. */
  verifyTop?: number;
  /** Absent: denoising. */
  direction?: Direction;
  /** Absent: patches come from a corrupted (or clean) run. With an ablation every pair's `corrupted` is its clean prompt, unused. */
  ablation?: Ablation;
  patchSets?: PatchSetSpec[];
  pathPatching?: PathPatchingSpec;
}
