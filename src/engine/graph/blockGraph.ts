import type { BlockHook } from '../hooks';
import type { ModelConfig } from '../model/config';
import type { BlockWeights } from '../model/weights';
import { GraphBuilder } from './graphBuilder';
import { type Dim, DataType } from './onnxProto';

/**
 * Which hooks a block graph returns and which it accepts patches for. With `withPast`, the graph
 * computes only a suffix of the positions: the keys and values of the prefix come in as inputs
 * (`past_k`, `past_v`, [batch, past, head, d_head]) and the causal mask is offset by the prefix length.
 */
export interface BlockVariant {
  readonly capture: readonly BlockHook[];
  readonly patch: readonly BlockHook[];
  readonly withPast: boolean;
}

export const BLOCK_WEIGHT_NAMES = [
  'ln1W', 'ln1B', 'wQkv', 'bQkv', 'wO', 'bO', 'ln2W', 'ln2B', 'wIn', 'bIn', 'wOut', 'bOut',
] as const satisfies readonly (keyof BlockWeights)[];

export const patchInput = (hook: string): string => `patch:${hook}`;
export const maskInput = (hook: string): string => `mask:${hook}`;
export const hookOutput = (hook: string): string => `hook:${hook}`;

export function variantKey(kind: string, v: { capture: readonly string[]; patch: readonly string[]; withPast?: boolean }): string {
  return `${kind}|c=${[...v.capture].sort().join(',')}|p=${[...v.patch].sort().join(',')}|past=${v.withPast ? 1 : 0}`;
}

/**
 * Adds a hook point: a patch replaces the value where the mask is true (Where is exact, unlike a
 * blend), and a capture returns the value as seen downstream, after any patch.
 */
export function hookPoint(
  g: GraphBuilder,
  v: { capture: readonly string[]; patch: readonly string[] },
  hook: string,
  value: string,
  shape: readonly Dim[],
  maskShape: readonly Dim[],
): string {
  let out = value;
  if (v.patch.includes(hook)) {
    const src = g.input(patchInput(hook), DataType.FLOAT, shape);
    const mask = g.input(maskInput(hook), DataType.BOOL, maskShape);
    out = g.op('Where', [mask, src, out]);
  }
  if (v.capture.includes(hook)) g.output(hookOutput(hook), out, DataType.FLOAT, shape);
  return out;
}

/** The GPT-2 block as TransformerLens computes it. One graph serves every layer: weights are inputs. */
export function buildBlockGraph(cfg: ModelConfig, v: BlockVariant): Uint8Array {
  const g = new GraphBuilder();
  const { dModel: D, nHeads: H, dHead: dh, dMlp: M } = cfg;
  const B = 'batch';
  const P = 'pos';
  const K = v.withPast ? 'keys' : P;
  const w = Object.fromEntries(
    BLOCK_WEIGHT_NAMES.map((n) => {
      const shape: Record<(typeof BLOCK_WEIGHT_NAMES)[number], number[]> = {
        ln1W: [D], ln1B: [D], wQkv: [D, 3 * D], bQkv: [3 * D], wO: [D, D], bO: [D],
        ln2W: [D], ln2B: [D], wIn: [D, M], bIn: [M], wOut: [M, D], bOut: [D],
      };
      return [n, g.input(n, DataType.FLOAT, shape[n])];
    }),
  ) as Record<(typeof BLOCK_WEIGHT_NAMES)[number], string>;
  const hp = (hook: BlockHook, value: string, shape: readonly Dim[], maskShape: readonly Dim[]) =>
    hookPoint(g, v, hook, value, shape, maskShape);
  const residShape = [B, P, D];
  const residMask = [B, P, 1];
  const headShape = [B, P, H, dh];
  const headMask = [B, P, H, 1];
  const attnShape = [B, H, P, K];

  const residPre = hp('hook_resid_pre', g.input('resid_pre', DataType.FLOAT, residShape), residShape, residMask);
  const ln1 = g.op('LayerNormalization', [residPre, w.ln1W, w.ln1B], { axis: -1, epsilon: cfg.layerNormEps });
  const qkv = g.op('Add', [g.op('MatMul', [ln1, w.wQkv]), w.bQkv]);
  const [q, k, vv] = g.opN('Split', [qkv], 3, { axis: -1, num_outputs: 3 });
  const toHeads = g.constInt64([0, 0, H, dh]);
  const hq = hp('attn.hook_q', g.op('Reshape', [q!, toHeads]), headShape, headMask);
  let hk = hp('attn.hook_k', g.op('Reshape', [k!, toHeads]), headShape, headMask);
  let hv = hp('attn.hook_v', g.op('Reshape', [vv!, toHeads]), headShape, headMask);
  if (v.withPast) {
    hk = g.op('Concat', [g.input('past_k', DataType.FLOAT, [B, 'past', H, dh]), hk], { axis: 1 });
    hv = g.op('Concat', [g.input('past_v', DataType.FLOAT, [B, 'past', H, dh]), hv], { axis: 1 });
  }
  const qT = g.op('Transpose', [hq], { perm: [0, 2, 1, 3] });
  const kT = g.op('Transpose', [hk], { perm: [0, 2, 3, 1] });
  const scale = g.constFloat([1 / Math.sqrt(dh)], []);
  const rawScores = g.op('Mul', [g.op('MatMul', [qT, kT]), scale]);

  // Causal mask: query i (absolute position past + i) sees keys 0..past+i.
  const zero = g.constInt64([0], []);
  const one = g.constInt64([1], []);
  const nQ = g.op('Gather', [g.op('Shape', [residPre]), g.constInt64([1], [])], { axis: 0 });
  const nK = g.op('Gather', [g.op('Shape', [hk]), g.constInt64([1], [])], { axis: 0 });
  const past = g.op('Sub', [nK, nQ]);
  const qPos = g.op('Unsqueeze', [g.op('Range', [past, nK, one]), g.constInt64([1])]);
  const kPos = g.op('Unsqueeze', [g.op('Range', [zero, nK, one]), g.constInt64([0])]);
  const causal = g.op('GreaterOrEqual', [qPos, kPos]);
  const masked = g.op('Where', [causal, rawScores, g.constFloat([-Infinity], [])]);
  const scores = hp('attn.hook_attn_scores', masked, attnShape, attnShape);
  const pattern = hp('attn.hook_pattern', g.op('Softmax', [scores], { axis: -1 }), attnShape, attnShape);
  const vT = g.op('Transpose', [hv], { perm: [0, 2, 1, 3] });
  const zT = g.op('MatMul', [pattern, vT]);
  const z = hp('attn.hook_z', g.op('Transpose', [zT], { perm: [0, 2, 1, 3] }), headShape, headMask);
  const zFlat = g.op('Reshape', [z, g.constInt64([0, 0, D])]);
  const attnOut = hp('hook_attn_out', g.op('Add', [g.op('MatMul', [zFlat, w.wO]), w.bO]), residShape, residMask);
  const residMid = hp('hook_resid_mid', g.op('Add', [residPre, attnOut]), residShape, residMask);
  const ln2 = g.op('LayerNormalization', [residMid, w.ln2W, w.ln2B], { axis: -1, epsilon: cfg.layerNormEps });
  const mlpShape = [B, P, M];
  const pre = hp('mlp.hook_pre', g.op('Add', [g.op('MatMul', [ln2, w.wIn]), w.bIn]), mlpShape, residMask);
  const post = hp('mlp.hook_post', activation(g, cfg, pre), mlpShape, residMask);
  const mlpOut = hp('hook_mlp_out', g.op('Add', [g.op('MatMul', [post, w.wOut]), w.bOut]), residShape, residMask);
  const residPost = hp('hook_resid_post', g.op('Add', [residMid, mlpOut]), residShape, residMask);
  g.output('resid_post', residPost, DataType.FLOAT, residShape);
  if (v.withPast) {
    // The suffix's own keys and values, so a caller can extend the prefix cache.
    g.output('present_k', hk, DataType.FLOAT, [B, K, H, dh]);
    g.output('present_v', hv, DataType.FLOAT, [B, K, H, dh]);
  }
  return g.build('block');
}

function activation(g: GraphBuilder, cfg: ModelConfig, x: string): string {
  switch (cfg.activation) {
    case 'gelu_new':
      return g.op('Gelu', [x], { approximate: 'tanh' });
    case 'gelu':
      return g.op('Gelu', [x], { approximate: 'none' });
    case 'relu':
      return g.op('Relu', [x]);
  }
}
