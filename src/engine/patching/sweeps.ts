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
type AxisName = IndexAxis | 'kv_head' | 'component';

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

/** One patched index: overwrite `hook` at `layer` where the activation's indices match the selector. */
export interface PatchSlot {
  readonly layer: number;
  readonly hook: BlockHook;
  /** The hook's layout, which says which of the indices below select the cells. */
  readonly layout: HookLayout;
  readonly pos?: number;
  readonly head?: number;
  readonly dest?: number;
  readonly src?: number;
}

/** The first position whose activations a slot can change (causality: nothing before it moves). */
export function slotStart(s: PatchSlot): number {
  return s.pos ?? s.dest ?? 0;
}

function axisSize(axis: IndexAxis, cfg: ModelConfig, nPos: number, hook: BlockHook): number {
  return axis === 'layer' ? cfg.nLayers : axis === 'head' ? hookInfo(cfg, hook).heads : nPos;
}

/** The slots of a simple sweep in TransformerLens's index order (last axis fastest). */
function simpleSlots(def: SimpleSweep, cfg: ModelConfig, nPos: number): PatchSlot[] {
  const sizes = def.axes.map((a) => axisSize(a, cfg, nPos, def.hook));
  const layout = hookInfo(cfg, def.hook).layout;
  const slots: PatchSlot[] = [];
  const idx = new Array<number>(sizes.length).fill(0);
  const total = sizes.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    let rest = n;
    for (let a = sizes.length - 1; a >= 0; a--) {
      idx[a] = rest % sizes[a]!;
      rest = Math.floor(rest / sizes[a]!);
    }
    const at = (axis: IndexAxis) => {
      const i = def.axes.indexOf(axis);
      return i < 0 ? undefined : idx[i];
    };
    const slot: { -readonly [K in keyof PatchSlot]: PatchSlot[K] } = { layer: idx[0]!, hook: def.hook, layout };
    if (at('pos') !== undefined) slot.pos = at('pos');
    if (at('head') !== undefined) slot.head = at('head');
    if (at('dest_pos') !== undefined) slot.dest = at('dest_pos');
    if (at('src_pos') !== undefined) slot.src = at('src_pos');
    slots.push(slot);
  }
  return slots;
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
    throw new UserError(`sweep '${name}' patches blocks.L.${hook}, which this ${cfg.architecture} model does not have: ${missingHookReason(cfg, hook)}; remove '${name}' from "sweeps"`);
  }
}

export interface SweepPlan {
  readonly name: SweepName;
  readonly shape: number[];
  readonly axes: AxisName[];
  readonly components?: string[];
  /** Every distinct slot to evaluate, each once. */
  readonly slots: PatchSlot[];
  /** For each output value (row-major over shape), the index into `slots` it reads, or -1 for an index the model lacks. */
  readonly valueSlot: Int32Array;
}

/** Shapes, axes and slots of a sweep for a model and a prompt length. */
export function planSweep(name: SweepName, cfg: ModelConfig, nPos: number): SweepPlan {
  checkSweepHooks(name, cfg);
  const simple = SIMPLE[name];
  if (simple) {
    const slots = simpleSlots(simple, cfg, nPos);
    const kvHeads = hookInfo(cfg, simple.hook).heads !== cfg.nHeads;
    return {
      name,
      shape: simple.axes.map((a) => axisSize(a, cfg, nPos, simple.hook)),
      axes: simple.axes.map((a) => (a === 'head' && kvHeads ? 'kv_head' : a)),
      slots,
      valueSlot: Int32Array.from(slots, (_, i) => i),
    };
  }
  const stacked = STACKED[name];
  if (!stacked) throw new Error(`no sweep named ${name}`);
  const slots: PatchSlot[] = [];
  const valueSlot: number[] = [];
  // The stacked shape is TransformerLens's: query heads. A k/v part of a grouped-query model has fewer
  // heads; its missing rows are marked absent, where TransformerLens pads with zeros.
  const partShape = stacked.axes.map((a) => (a === 'head' ? cfg.nHeads : axisSize(a, cfg, nPos, 'hook_resid_pre')));
  for (const part of stacked.parts) {
    const sub = planSweep(part.sweep, cfg, nPos);
    const base = slots.length;
    slots.push(...sub.slots);
    const order = part.renameAxes ? transposeOrder(sub.shape, part.renameAxes, stacked.axes) : [...sub.valueSlot];
    const own = part.renameAxes ? stacked.axes.map((a) => sub.shape[part.renameAxes!.indexOf(a)]!) : sub.shape;
    valueSlot.push(...padHeads(order.map((i) => base + i), own, partShape));
  }
  return {
    name,
    shape: [stacked.parts.length, ...partShape],
    axes: ['component', ...stacked.axes],
    components: stacked.parts.map((p) => p.component),
    slots,
    valueSlot: Int32Array.from(valueSlot),
  };
}

/** Lays a part's values (row-major over `shape`) into the stacked part shape, -1 where the part has no index. */
function padHeads(values: number[], shape: readonly number[], full: readonly number[]): number[] {
  if (shape.every((d, i) => d === full[i])) return values;
  const out: number[] = [];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const total = full.reduce((a, b) => a * b, 1);
  for (let n = 0; n < total; n++) {
    let rest = n;
    let src = 0;
    let inside = true;
    for (let a = full.length - 1; a >= 0; a--) {
      const i = rest % full[a]!;
      rest = Math.floor(rest / full[a]!);
      if (i >= shape[a]!) inside = false;
      src += i * strides[a]!;
    }
    out.push(inside ? values[src]! : -1);
  }
  return out;
}

/**
 * For a part of shape `fromShape` whose axes, under their presented names, are `renamed`, the source
 * index of each value when it is laid out in `outAxes` order.
 */
function transposeOrder(fromShape: number[], renamed: readonly IndexAxis[], outAxes: readonly IndexAxis[]): number[] {
  const outShape = outAxes.map((a) => fromShape[renamed.indexOf(a)]!);
  const total = outShape.reduce((a, b) => a * b, 1);
  const order: number[] = [];
  const strides = fromShape.map((_, i) => fromShape.slice(i + 1).reduce((a, b) => a * b, 1));
  for (let n = 0; n < total; n++) {
    let rest = n;
    let src = 0;
    for (let a = outAxes.length - 1; a >= 0; a--) {
      const i = rest % outShape[a]!;
      rest = Math.floor(rest / outShape[a]!);
      src += i * strides[renamed.indexOf(outAxes[a]!)]!;
    }
    order.push(src);
  }
  return order;
}

/** Every hook a set of sweeps patches, per block hook name (e.g. 'attn.hook_z'). */
export function hooksOfSweeps(names: readonly SweepName[], cfg: ModelConfig): Set<BlockHook> {
  const hooks = new Set<BlockHook>();
  for (const n of names) for (const s of planSweep(n, cfg, 1).slots) hooks.add(s.hook);
  return hooks;
}
