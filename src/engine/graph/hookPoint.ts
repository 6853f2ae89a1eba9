import { type BlockHook, type HookInfo } from '../hooks';
import type { GraphBuilder } from './graphBuilder';
import { type Dim, DataType } from './onnxProto';

/** Which hooks a graph returns and which it accepts patches for. */
export interface HookVariant {
  readonly capture: readonly string[];
  readonly patch: readonly string[];
}

export const patchInput = (hook: string): string => `patch:${hook}`;
export const maskInput = (hook: string): string => `mask:${hook}`;
export const hookOutput = (hook: string): string => `hook:${hook}`;

export function variantKey(kind: string, v: HookVariant & { withPast?: boolean; gather?: boolean; qkvRows?: boolean; columns?: boolean }): string {
  const flags = `past=${v.withPast ? 1 : 0}|gather=${v.gather ? 1 : 0}|qkv=${v.qkvRows ? 1 : 0}|columns=${v.columns ? 1 : 0}`;
  return `${kind}|c=${[...v.capture].sort().join(',')}|p=${[...v.patch].sort().join(',')}|${flags}`;
}

/** Whether a hook is read or written in this variant (a norm then runs as separate ops so its steps exist). */
export const isHooked = (v: HookVariant, hook: string): boolean => v.capture.includes(hook) || v.patch.includes(hook);

/**
 * The symbolic shape of a hook's value and of its patch mask: batch 'batch', the graph's own positions
 * 'pos', and 'keys' for the positions a block attends to (prefix + own, when the prefix comes from a cache).
 */
export function hookDims(info: HookInfo, gathered = false): { shape: Dim[]; mask: Dim[] } {
  const P = info.keySide ? 'keys' : 'pos';
  switch (info.layout) {
    case 'resid':
      // After a block's gather (see BlockVariant.gather) the rows kept are one batch of 'out' positions.
      if (gathered) return { shape: [1, 'out', info.width], mask: [1, 'out', 1] };
      return { shape: ['batch', P, info.width], mask: ['batch', P, 1] };
    case 'head':
      return { shape: ['batch', P, info.heads, info.width], mask: ['batch', P, info.heads, 1] };
    case 'attn':
      return { shape: ['batch', info.heads, 'pos', 'keys'], mask: ['batch', info.heads, 'pos', 'keys'] };
  }
}

/**
 * Adds a hook point: a patch replaces the value where the mask is true (Where is exact, unlike a blend),
 * and a capture returns the value as seen downstream, after any patch.
 */
export function hookPoint(g: GraphBuilder, v: HookVariant, hook: BlockHook, info: HookInfo, value: string, gathered = false): string {
  let out = value;
  const { shape, mask } = hookDims(info, gathered);
  if (v.patch.includes(hook)) {
    const src = g.input(patchInput(hook), DataType.FLOAT, shape);
    const m = g.input(maskInput(hook), DataType.BOOL, mask);
    out = g.op('Where', [m, src, out]);
  }
  if (v.capture.includes(hook)) g.output(hookOutput(hook), out, DataType.FLOAT, shape);
  return out;
}
