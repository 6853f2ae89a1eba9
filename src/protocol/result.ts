import type { Ablation, Direction, MethodName, MetricName, PatchSpec, ResultSweepName } from './spec';

/** The result file a run writes (`<name>.result.json`): everything a viewer needs, nothing more. */
export const RESULT_FORMAT = 'patchlens.result/1';

export type RunStatus = 'done' | 'cancelled' | 'failed';

export interface PromptTokens {
  readonly ids: number[];
  /** Each token as a person reads it (GPT-2's 'Ġ' shown as a space). */
  readonly strings: string[];
  /** [start, end) UTF-16 offsets into the source document, null for BOS or tokens given as ids. */
  readonly ranges: ([number, number] | null)[];
}

export interface PairTokens {
  readonly clean: PromptTokens;
  /** Absent in an ablation run, which has no corrupted prompt. */
  readonly corrupted?: PromptTokens;
  /** The pair's labelled positions (label → positions), when the spec names them. */
  readonly labels?: Readonly<Record<string, readonly number[]>>;
}

export interface SweepResult {
  readonly shape: number[];
  /** Index names in TransformerLens's order, e.g. ['layer', 'pos'] or ['component', 'layer', 'head']. */
  readonly axes: string[];
  /**
   * Row-major, last axis fastest. null marks an index that does not exist in this model, not a
   * measurement: the key/value rows of a stacked sweep on a grouped-query model (TransformerLens pads them
   * with zeros to n_heads; PatchLens keeps its shape but never reports a 0 that was not measured).
   */
  readonly values: (number | null)[];
  /** Names of the stacked activations of the *_every sweeps (the 'component' axis). */
  readonly components?: string[];
  /**
   * The labels of the 'label' axes ('label', 'dest_label', 'src_label'): a labelled spec's position-wise
   * sweeps patch each pair at its own positions for a label, so the axis counts labels, not tokens.
   */
  readonly labels?: string[];
  /**
   * Attribution runs only. AtP*'s GradDrop score per value (same layout as `values`): the mean over the
   * dropped layers of |estimated effect|, what its ranking reads (a magnitude, in raw metric units).
   */
  readonly score?: (number | null)[];
  /** Attribution runs with verify_top: exact patching of some of the estimated values. */
  readonly verification?: SweepVerification;
  /** Path patching: what the [layer, head] heatmap's senders were measured through (`L9H6.q`, …, or `resid_final`). */
  readonly receivers?: string[];
  /** Path patching with a sender set: the set patched together, in the values' units. */
  readonly senderSet?: { readonly senders: string[]; readonly value: number };
}

/** Estimates checked by exact (fast) patching: the k largest by |estimated effect| (or score) and k random others. */
export interface SweepVerification {
  /** `index` is a flat index into `values`; `estimate` repeats values[index]; both are in the metric's reported units. */
  readonly cells: { readonly index: number; readonly estimate: number; readonly exact: number; readonly chosen: 'top' | 'random' }[];
  /** Spearman's rank correlation of estimate and exact over the cells (null for fewer than 2 cells or no spread). */
  readonly spearman: number | null;
  /** The cell whose |estimate − exact| is largest. */
  readonly largestMiss: { readonly index: number; readonly estimate: number; readonly exact: number } | null;
}

/** How an attribution run's estimates were made and what they cost. */
export interface AttributionInfo {
  readonly method: Exclude<MethodName, 'exact'>;
  /** denoising: clean activations patched into the corrupted run, the gradient taken there (TransformerLens's direction). */
  readonly direction: 'denoising' | 'noising';
  /** FLOPs of the estimates (both forward passes, backward passes, the QK fix's runs) over one forward pass's. */
  readonly forwardEquivalents: number;
  /** Exact patched runs' FLOPs spent on verification, in the same unit. */
  readonly verifyForwardEquivalents: number;
  readonly verifyTop?: number;
}

/** A patch set's value: every listed component patched at once. */
export interface PatchSetResult {
  readonly name: string;
  /** The components in canonical form (`L9H6`, `L3.mlp_out@END`). */
  readonly components: string[];
  /** The metric with all of them patched together (normalized like the sweeps' values); null when not computed. */
  readonly value: number | null;
}

/** A model's sizes, in TransformerLens's names. */
export interface ModelShape {
  readonly nLayers: number;
  readonly nHeads: number;
  readonly dModel: number;
  readonly dHead: number;
  readonly dMlp: number;
  readonly dVocab: number;
  readonly nCtx: number;
  /** Key/value heads (grouped-query attention); absent in files written before it existed: nHeads. */
  readonly nKvHeads?: number;
}

/** Where a run's model was loaded from; absent in older files. */
export interface ModelLocation {
  /** A checkpoint folder, a hub repo (its copy in the cache), or a model built into PatchLens. */
  readonly kind: 'folder' | 'hub' | 'builtin';
  /** The folder the weights were read from. */
  readonly dir: string;
  /** The hub repo, for 'hub'. */
  readonly repo?: string;
}

/**
 * The model a run used. `config` and `provider` are absent when they are not known: the record of a
 * run whose engine stopped before it had loaded the model (the engine reports them once it has).
 */
export interface ModelInfo {
  /** What the spec or the user named: a hub id, a folder, or a built-in model. */
  readonly id: string;
  readonly location?: ModelLocation;
  readonly config?: ModelShape;
  /** The family that read the checkpoint ('gpt2', 'gpt_neox', 'llama', ...); absent in older files. */
  readonly architecture?: string;
  /** The compute dtype. */
  readonly dtype: 'float32';
  /** The dtype of the checkpoint's stored weights ('F32', 'BF16', 'F16'), converted to float32 on load. */
  readonly weightsDtype?: string;
  /** The execution provider that ran the model (cpu, webgpu, cuda, ...). */
  readonly provider?: string;
  /** Weight processing applied before the run; PatchLens applies none unless asked. */
  readonly weightProcessing: 'none';
}

export interface PatchResult {
  readonly format: typeof RESULT_FORMAT;
  readonly name: string;
  readonly status: RunStatus;
  /** Set when status is 'failed' or 'cancelled'. */
  readonly message?: string;
  readonly createdAt: string;
  readonly spec: PatchSpec;
  /** Absolute path of the spec file or document the prompts came from, if any. */
  readonly source?: string;
  readonly model: ModelInfo;
  readonly engine: { readonly version: string; readonly mode: 'fast' | 'naive'; readonly seconds: number };
  readonly metric: MetricName;
  readonly tokens: PairTokens[];
  /**
   * Which run the patches went into and where their values came from (absent in files written before
   * it existed: denoising). With `ablation` the patches wrote zeros or means into the clean run.
   */
  readonly direction?: Direction;
  readonly ablation?: Ablation;
  /**
   * The metric's raw value on the clean and on the corrupted run (for normalized metrics: the
   * un-normalized ones); an ablation run has no corrupted run. Absent only when the run failed before
   * computing them.
   */
  readonly baselines?: { readonly clean: number; readonly corrupted?: number };
  readonly sweeps: Partial<Record<ResultSweepName, SweepResult>>;
  /** Present when the spec's method is atp or atp_star: the sweeps' values are then estimates. */
  readonly attribution?: AttributionInfo;
  /** The spec's patch sets, in its order (absent when it has none). */
  readonly patchSets?: PatchSetResult[];
}
