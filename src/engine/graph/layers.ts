import type { HookInfo } from '../hooks';
import type { Activation, ModelConfig } from '../model/config';
import type { GraphBuilder } from './graphBuilder';
import { hookPoint, type HookVariant, isHooked } from './hookPoint';

/** x @ w (+ b): `x` [..., in], `w` [in, out]. */
export function linear(g: GraphBuilder, x: string, w: string, b?: string): string {
  const y = g.op('MatMul', [x, w]);
  return b ? g.op('Add', [y, b]) : y;
}

/**
 * A LayerNorm (bias given) or RMSNorm over the last axis, with TransformerLens's two hooks `{name}.hook_scale`
 * (the divisor √(mean(x²) + eps), after centring for LayerNorm) and `{name}.hook_normalized` (x / scale,
 * before the gain). Unhooked, a LayerNorm is onnxruntime's fused op; the RMSNorm keeps the op pattern
 * onnxruntime's optimizer fuses (Pow, ReduceMean, Add, Sqrt, Div).
 */
export function norm(g: GraphBuilder, v: HookVariant, name: string, hooks: { scale: HookInfo; normalized: HookInfo }, x: string, eps: number, w: string, b?: string): string {
  const scaleHook = `${name}.hook_scale`;
  const normalizedHook = `${name}.hook_normalized`;
  if (b && !isHooked(v, scaleHook) && !isHooked(v, normalizedHook)) {
    // A whole-number eps must still be written as a float attribute.
    return g.op('LayerNormalization', [x, w, b], { axis: -1, epsilon: { kind: 'float', value: eps } });
  }
  const lastAxis = g.constInt64([-1]);
  const centred = b ? g.op('Sub', [x, g.op('ReduceMean', [x, lastAxis], { keepdims: 1 })]) : x;
  const meanSquare = g.op('ReduceMean', [g.op('Pow', [centred, g.constFloat([2], [])]), lastAxis], { keepdims: 1 });
  const scale = hookPoint(g, v, scaleHook, hooks.scale, g.op('Sqrt', [g.op('Add', [meanSquare, g.constFloat([eps], [])])]));
  const normalized = hookPoint(g, v, normalizedHook, hooks.normalized, g.op('Div', [centred, scale]));
  const gained = g.op('Mul', [normalized, w]);
  return b ? g.op('Add', [gained, b]) : gained;
}

export function activation(g: GraphBuilder, kind: Activation, x: string): string {
  switch (kind) {
    case 'gelu_new':
      return g.op('Gelu', [x], { approximate: 'tanh' });
    case 'gelu':
      return g.op('Gelu', [x], { approximate: 'none' });
    case 'relu':
      return g.op('Relu', [x]);
    case 'silu':
      return g.op('Mul', [x, g.op('Sigmoid', [x])]);
    case 'solu_ln':
      // SoLU: x · softmax(x) over the MLP's neurons; its LayerNorm follows as a separate norm.
      return g.op('Mul', [x, g.op('Softmax', [x], { axis: -1 })]);
  }
}

/**
 * Rotary embedding (rotate-half) of `x` [batch, n, heads, d_head] whose positions are `positions` (int64
 * [n]). `cos` / `sin` are tables [maxPos, rotaryDim/2] the engine computes in float64 from the family's
 * frequencies; only the first rotaryDim dims of each head turn.
 */
export function rotary(g: GraphBuilder, cfg: ModelConfig, x: string, positions: string, cos: string, sin: string): string {
  const r = cfg.rotary!.dim;
  const half = r / 2;
  const E = cfg.dHead;
  const rows = (t: string) => g.op('Unsqueeze', [g.op('Gather', [t, positions], { axis: 0 }), g.constInt64([1])]); // [n, 1, half]
  const c = rows(cos);
  const s = rows(sin);
  const slice = (from: number, to: number) => g.op('Slice', [x, g.constInt64([from]), g.constInt64([to]), g.constInt64([3])]);
  const x1 = slice(0, half);
  const x2 = slice(half, r);
  const out1 = g.op('Sub', [g.op('Mul', [x1, c]), g.op('Mul', [x2, s])]);
  const out2 = g.op('Add', [g.op('Mul', [x2, c]), g.op('Mul', [x1, s])]);
  return g.op('Concat', r < E ? [out1, out2, slice(r, E)] : [out1, out2], { axis: 3 });
}
