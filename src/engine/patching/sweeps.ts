import type { SweepName } from '../../protocol/spec';
import { type BlockHook, blockHooks, type HookLayout, hookInfo } from '../hooks';
import type { ModelConfig } from '../model/config';
import { UserError } from '../../common/userError';

/**
 * The sweep catalogue: TransformerLens's get_act_patch_* functions as data. A simple sweep patches one
 * hook; its index axes say which slice of the activation each index overwrites (in every batch row).
 * The *_every sweeps stack simple sweeps on a leading 'component' axis.
 */
export type IndexAxis = 'layer' | 'pos' | 'head' | 'dest_pos' | 'src_pos';

/** What the result calls an index axis: a k/v sweep's head axis counts key/value heads on a grouped-query model. */
type AxisName = IndexAxis | 'kv_head' | 'component' | 'label' | 'dest_label' | 'src_label';

/** A labelled sweep's position axes are named for labels, so no reader takes a label's index for a token's. */
const LABEL_AXES: Partial<Record<IndexAxis, AxisName>> = { pos: 'label', dest_pos: 'dest_label', src_pos: 'src_label' };

interface SimpleSweep {
  readonly hook: BlockHook;
  readonly axes: readonly IndexAxis[];
}

interface StackedSweep {
  readonly parts: readonly { readonly component: string; readonly sweep: SweepName; readonly renameAxes?: readonly IndexAxis[] }[];
  /** The axes every part is presented in (a part with `renameAxes` is transposed into them). */
  readonly axes: readonly IndexAxis[];
}

const LP: readonly IndexAxis[] = ['layer', 'pos'];
const LPH: readonly IndexAxis[] = ['layer', 'pos', 'head'];
const LH: readonly IndexAxis[] = ['layer', 'head'];

const SIMPLE: Partial<Record<SweepName, SimpleSweep>> = {
  resid_pre: { hook: 'hook_resid_pre', axes: LP },
  resid_mid: { hook: 'hook_resid_mid', axes: LP },
  resid_post: { hook: 'hook_resid_post', axes: LP },
  attn_out: { hook: 'hook_attn_out', axes: LP },
  mlp_out: { hook: 'hook_mlp_out', axes: LP },
  // TransformerLens's "head output" is hook_z, the per-head mix of values before W_O.
  attn_head_out_by_pos: { hook: 'attn.hook_z', axes: LPH },
  attn_head_q_by_pos: { hook: 'attn.hook_q', axes: LPH },
  attn_head_k_by_pos: { hook: 'attn.hook_k', axes: LPH },
  attn_head_v_by_pos: { hook: 'attn.hook_v', axes: LPH },
  attn_head_out_all_pos: { hook: 'attn.hook_z', axes: LH },
  attn_head_q_all_pos: { hook: 'attn.hook_q', axes: LH },
  attn_head_k_all_pos: { hook: 'attn.hook_k', axes: LH },
  attn_head_v_all_pos: { hook: 'attn.hook_v', axes: LH },
  attn_head_pattern_all_pos: { hook: 'attn.hook_pattern', axes: LH },
  attn_head_pattern_by_pos: { hook: 'attn.hook_pattern', axes: ['layer', 'head', 'dest_pos'] },
  attn_head_pattern_dest_src_pos: { hook: 'attn.hook_pattern', axes: ['layer', 'head', 'dest_pos', 'src_pos'] },
};

const STACKED: Partial<Record<SweepName, StackedSweep>> = {
  block_every: {
    axes: LP,
    parts: [
      { component: 'resid_pre', sweep: 'resid_pre' },
      { component: 'attn_out', sweep: 'attn_out' },
      { component: 'mlp_out', sweep: 'mlp_out' },
    ],
  },
  attn_head_all_pos_every: {
    axes: LH,
    parts: [
      { component: 'output', sweep: 'attn_head_out_all_pos' },
      { component: 'query', sweep: 'attn_head_q_all_pos' },
      { component: 'key', sweep: 'attn_head_k_all_pos' },
      { component: 'value', sweep: 'attn_head_v_all_pos' },
      { component: 'pattern', sweep: 'attn_head_pattern_all_pos' },
    ],
  },
  attn_head_by_pos_every: {
    axes: LPH,
    parts: [
      { component: 'output', sweep: 'attn_head_out_by_pos' },
      { component: 'query', sweep: 'attn_head_q_by_pos' },
      { component: 'key', sweep: 'attn_head_k_by_pos' },
      { component: 'value', sweep: 'attn_head_v_by_pos' },
      // pattern_by_pos is indexed [layer, head, dest]; TransformerLens rearranges it to [layer, pos, head].
      { component: 'pattern', sweep: 'attn_head_pattern_by_pos', renameAxes: ['layer', 'head', 'pos'] },
    ],
  },
};

/**
 * One patched index: overwrite `hook` at `layer` where the activation's indices match the selector. A
 * position-wise index is either one position of every pair (`pos`, or a pattern's `dest`/`src`), or a
 * label (`label`, `srcLabel`): then `at[i]` (`srcAt[i]`) are pair i's own positions for it.
 */
export interface PatchSlot {
  readonly layer: number;
  readonly hook: BlockHook;
  /** The hook's layout, which says which of the indices below select the cells. */
  readonly layout: HookLayout;
  readonly pos?: number;
  readonly head?: number;
  readonly dest?: number;
  readonly src?: number;
  /** A labelled position (the label's index) and, per pair, the positions it stands for (pos or dest). */
  readonly label?: number;
  readonly at?: readonly (readonly number[])[];
  /** A labelled source position of a dest × src pattern entry, per pair. */
  readonly srcLabel?: number;
  readonly srcAt?: readonly (readonly number[])[];
}

/** Pair i's positions a slot patches on its position (or destination) axis; undefined: every position. */
export function slotPositions(s: PatchSlot, pair: number): readonly number[] | undefined {
  if (s.at) return s.at[pair]!;
  const p = s.pos ?? s.dest;
  return p === undefined ? undefined : [p];
}

/** Pair i's source positions of a pattern slot; undefined: every source. */
export function slotSources(s: PatchSlot, pair: number): readonly number[] | undefined {
  if (s.srcAt) return s.srcAt[pair]!;
  return s.src === undefined ? undefined : [s.src];
}

/** Whether the slot patches chosen positions (or destinations) only, rather than every one. */
export const isPositioned = (s: PatchSlot): boolean => s.at !== undefined || s.pos !== undefined || s.dest !== undefined;

/** The first position whose activations a slot can change in any pair (causality: nothing before it moves). */
export function slotStart(s: PatchSlot): number {
  if (s.at) return Math.min(...s.at.flat());
  return s.pos ?? s.dest ?? 0;
}

/** The same slot with its positions counted from `p` (a suffix of the sequence). */
export function shiftSlot(s: PatchSlot, p: number): PatchSlot {
  if (p === 0) return s;
  const shift = (rows: readonly (readonly number[])[]) => rows.map((r) => r.map((x) => x - p));
  return {
    ...s,
    ...(s.pos !== undefined ? { pos: s.pos - p } : {}),
    ...(s.dest !== undefined ? { dest: s.dest - p } : {}),
    ...(s.at ? { at: shift(s.at) } : {}),
  };
}

/** A key that is equal for slots that patch the same cells (sweeps share slots; each runs once). */
export const slotKey = (s: PatchSlot): string => `${s.layer}|${s.hook}|${s.pos}|${s.head}|${s.dest}|${s.src}|${s.label}|${s.srcLabel}`;

/**
 * What a position axis counts: token positions (`n` of them, the longest pair's length), or the
 * labels the pairs name, each pair at its own positions for a label (`at[label][pair]`).
 */
export type PositionAxis =
  { readonly kind: 'index'; readonly n: number } | { readonly kind: 'label'; readonly labels: readonly string[]; readonly at: readonly (readonly (readonly number[])[])[] };

const axisLength = (axis: PositionAxis): number => (axis.kind === 'index' ? axis.n : axis.labels.length);

function axisSize(axis: IndexAxis, cfg: ModelConfig, positions: PositionAxis, hook: BlockHook): number {
  return axis === 'layer' ? cfg.nLayers : axis === 'head' ? hookInfo(cfg, hook).heads : axisLength(positions);
}

/** The slot at flat index `n` of a simple sweep of shape `sizes` (TransformerLens's index order, last axis fastest). */
function simpleSlot(def: SimpleSweep, layout: HookLayout, sizes: readonly number[], n: number, positions?: PositionAxis): PatchSlot {
  const slot: { -readonly [K in keyof PatchSlot]: PatchSlot[K] } = { layer: 0, hook: def.hook, layout };
  const labelled = positions?.kind === 'label' ? positions : undefined;
  let rest = n;
  for (let a = sizes.length - 1; a >= 0; a--) {
    const i = rest % sizes[a]!;
    rest = Math.floor(rest / sizes[a]!);
    const axis = def.axes[a]!;
    if (axis === 'layer') slot.layer = i;
    else if (axis === 'head') slot.head = i;
    else if (labelled && axis === 'src_pos') {
      slot.srcLabel = i;
      slot.srcAt = labelled.at[i];
    } else if (labelled) {
      slot.label = i;
      slot.at = labelled.at[i];
    } else if (axis === 'pos') slot.pos = i;
    else if (axis === 'dest_pos') slot.dest = i;
    else slot.src = i;
  }
  return slot;
}

/** Slot `n` of a simple sweep (its own index order), over token positions. */
export function partSlot(part: SweepPart, cfg: ModelConfig, n: number): PatchSlot {
  const def = SIMPLE[part.sweep]!;
  return simpleSlot(def, hookInfo(cfg, def.hook).layout, part.shape, n);
}

/** Why a model lacks a hook a sweep patches (TransformerLens fails on these sweeps with a KeyError). */
function missingHookReason(cfg: ModelConfig, hook: BlockHook): string {
  if (cfg.attnOnly) return 'it is attention-only, with no MLP';
  if (hook === 'hook_resid_mid' && cfg.parallelAttnMlp) return 'its attention and MLP run in parallel on resid_pre, so there is no residual stream between them';
  return 'its architecture has no such hook point';
}

/** The hook a sweep patches that this model does not have, if any. */
function missingHook(name: SweepName, cfg: ModelConfig): BlockHook | undefined {
  const parts = SIMPLE[name] ? [SIMPLE[name]!] : (STACKED[name]?.parts ?? []).map((p) => SIMPLE[p.sweep]!);
  return parts.find((part) => !blockHooks(cfg).has(part.hook))?.hook;
}

/** Whether the model has every hook the sweep patches. */
export function modelHasSweep(name: SweepName, cfg: ModelConfig): boolean {
  return missingHook(name, cfg) === undefined;
}

/** Refuses, before any work, a sweep that patches a hook this model does not have. */
export function checkSweepHooks(name: SweepName, cfg: ModelConfig): void {
  const hook = missingHook(name, cfg);
  if (hook !== undefined) {
    throw new UserError(
      `sweep '${name}' patches blocks.L.${hook}, which this ${cfg.architecture} model does not have: ${missingHookReason(cfg, hook)}; remove '${name}' from "sweeps"`,
    );
  }
}

/** A simple sweep a sweep shows: its slots are numbered from `base` in the sweep's valueSlot. */
export interface SweepPart {
  readonly sweep: SweepName;
  readonly hook: BlockHook;
  /** Its own index axes ('layer' first) and their sizes. */
  readonly axes: readonly IndexAxis[];
  readonly shape: readonly number[];
  readonly count: number;
  readonly base: number;
}

/** A sweep's shape and axes, and which slot of which simple sweep each of its values reads, without the slots themselves. */
export interface SweepLayout {
  readonly name: SweepName;
  readonly shape: number[];
  readonly axes: AxisName[];
  readonly components?: string[];
  /** The labels of a sweep whose position axes are labelled. */
  readonly labels?: string[];
  readonly parts: readonly SweepPart[];
  /** For each output value (row-major over shape), the slot it reads (numbered across the parts), or -1 for an index the model lacks. */
  readonly valueSlot: Int32Array;
}

export interface SweepPlan extends SweepLayout {
  /** Every distinct slot to evaluate, each once, numbered as valueSlot numbers them. */
  readonly slots: PatchSlot[];
}

/**
 * Shapes, axes and value layout of a sweep for a model and the prompts' positions (or labels).
 * Attribution reads whole simple sweeps at once and needs no slot objects; the all-sweeps run has
 * 355,000 of them on GPT-2 small.
 */
export function sweepLayout(name: SweepName, cfg: ModelConfig, positions: PositionAxis): SweepLayout {
  checkSweepHooks(name, cfg);
  const labels = positions.kind === 'label' ? { labels: [...positions.labels] } : {};
  const named = (a: IndexAxis): AxisName => (positions.kind === 'label' ? (LABEL_AXES[a] ?? a) : a);
  const simple = SIMPLE[name];
  if (simple) {
    const shape = simple.axes.map((a) => axisSize(a, cfg, positions, simple.hook));
    const count = shape.reduce((a, b) => a * b, 1);
    const kvHeads = hookInfo(cfg, simple.hook).heads !== cfg.nHeads;
    return {
      name,
      shape,
      axes: simple.axes.map((a) => (a === 'head' && kvHeads ? 'kv_head' : named(a))),
      ...(simple.axes.some((a) => LABEL_AXES[a]) ? labels : {}),
      parts: [{ sweep: name, hook: simple.hook, axes: simple.axes, shape, count, base: 0 }],
      valueSlot: identity(count),
    };
  }
  const stacked = STACKED[name];
  if (!stacked) throw new Error(`no sweep named ${name}`);
  const parts: SweepPart[] = [];
  // The stacked shape is TransformerLens's: query heads. A k/v part of a grouped-query model has fewer
  // heads; its missing rows are marked absent, where TransformerLens pads with zeros.
  const partShape = stacked.axes.map((a) => (a === 'head' ? cfg.nHeads : axisSize(a, cfg, positions, 'hook_resid_pre')));
  const per = partShape.reduce((a, b) => a * b, 1);
  const valueSlot = new Int32Array(stacked.parts.length * per);
  let base = 0;
  stacked.parts.forEach((part, q) => {
    const sub = sweepLayout(part.sweep, cfg, positions).parts[0]!;
    parts.push({ ...sub, base });
    placePart(valueSlot.subarray(q * per, (q + 1) * per), sub.shape, part.renameAxes ?? SIMPLE[part.sweep]!.axes, stacked.axes, partShape, base);
    base += sub.count;
  });
  return {
    name,
    shape: [stacked.parts.length, ...partShape],
    axes: ['component', ...stacked.axes.map(named)],
    components: stacked.parts.map((p) => p.component),
    ...(stacked.axes.some((a) => LABEL_AXES[a]) ? labels : {}),
    parts,
    valueSlot,
  };
}

function identity(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

/** A layout's slots as patches. */
export function planSweep(name: SweepName, cfg: ModelConfig, positions: PositionAxis): SweepPlan {
  const layout = sweepLayout(name, cfg, positions);
  const slots = layout.parts.flatMap((p) => {
    const hookLayout = hookInfo(cfg, p.hook).layout;
    return Array.from({ length: p.count }, (_, n) => simpleSlot(SIMPLE[p.sweep]!, hookLayout, p.shape, n, positions));
  });
  return { ...layout, slots };
}

/**
 * Lays a part's slots into its block of a stacked sweep (row-major over `full`, axes `outAxes`): the part
 * is row-major over `shape`, whose axes are called `named` there (a part presented under other axis
 * names is transposed into the stacked order); -1 where the part has no such index (fewer k/v heads).
 */
function placePart(out: Int32Array, shape: readonly number[], named: readonly IndexAxis[], outAxes: readonly IndexAxis[], full: readonly number[], base: number): void {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const from = outAxes.map((a) => named.indexOf(a));
  const idx = new Array<number>(full.length).fill(0);
  for (let n = 0; n < out.length; n++) {
    let src = 0;
    let inside = true;
    for (let k = 0; k < full.length; k++) {
      if (idx[k]! >= shape[from[k]!]!) inside = false;
      src += idx[k]! * strides[from[k]!]!;
    }
    out[n] = inside ? base + src : -1;
    // The next index, last axis fastest.
    for (let k = full.length - 1; k >= 0 && ++idx[k]! === full[k]!; k--) idx[k] = 0;
  }
}

/** Every hook a set of sweeps patches, per block hook name (e.g. 'attn.hook_z'). */
export function hooksOfSweeps(names: readonly SweepName[], cfg: ModelConfig): Set<BlockHook> {
  const hooks = new Set<BlockHook>();
  for (const n of names) for (const p of sweepLayout(n, cfg, { kind: 'index', n: 1 }).parts) hooks.add(p.hook);
  return hooks;
}
