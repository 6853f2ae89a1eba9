import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './graphBuilder';
import { hookPoint } from './blockGraph';
import { DataType } from './onnxProto';

export interface EdgeVariant {
  readonly capture: readonly string[];
  readonly patch: readonly string[];
}

/** Token and position embeddings: ids [batch, pos] -> the residual stream entering block 0. */
export function buildEmbedGraph(cfg: ModelConfig, v: EdgeVariant): Uint8Array {
  const g = new GraphBuilder();
  const D = cfg.dModel;
  const shape = ['batch', 'pos', D];
  const mask = ['batch', 'pos', 1];
  const ids = g.input('ids', DataType.INT64, ['batch', 'pos']);
  const wte = g.input('wte', DataType.FLOAT, [cfg.dVocab, D]);
  const wpe = g.input('wpe', DataType.FLOAT, [cfg.nCtx, D]);
  const embed = hookPoint(g, v, 'hook_embed', g.op('Gather', [wte, ids], { axis: 0 }), shape, mask);
  const nPos = g.op('Gather', [g.op('Shape', [ids]), g.constInt64([1], [])], { axis: 0 });
  const positions = g.op('Range', [g.constInt64([0], []), nPos, g.constInt64([1], [])]);
  const posRows = g.op('Gather', [wpe, positions], { axis: 0 });
  const posEmbed = hookPoint(g, v, 'hook_pos_embed', g.op('Expand', [posRows, g.op('Shape', [embed])]), shape, mask);
  g.output('resid', g.op('Add', [embed, posEmbed]), DataType.FLOAT, shape);
  return g.build('embed');
}

/**
 * Final LayerNorm and unembedding, evaluated only at the flat (row * pos + p) indices in `rows`, since
 * most metrics read one position. `ln_final.hook_normalized` is the value before the LayerNorm's gain
 * and bias, as in TransformerLens; when it is hooked the whole [batch, pos, d_model] is computed.
 */
export function buildUnembedGraph(cfg: ModelConfig, v: EdgeVariant): Uint8Array {
  const g = new GraphBuilder();
  const D = cfg.dModel;
  const shape = ['batch', 'pos', D];
  const resid = g.input('resid', DataType.FLOAT, shape);
  const lnfW = g.input('lnfW', DataType.FLOAT, [D]);
  const lnfB = g.input('lnfB', DataType.FLOAT, [D]);
  const unembed = g.input('unembed', DataType.FLOAT, [cfg.dVocab, D]);
  const rows = g.input('rows', DataType.INT64, ['rows']);
  const ones = g.constFloat(new Float32Array(D).fill(1));
  const zeros = g.constFloat(new Float32Array(D));
  const toFlat = g.constInt64([-1, D]);
  const hook = 'ln_final.hook_normalized';
  let selected: string;
  if (v.capture.includes(hook) || v.patch.includes(hook)) {
    const normalized = g.op('LayerNormalization', [resid, ones, zeros], { axis: -1, epsilon: cfg.layerNormEps });
    const hooked = hookPoint(g, v, hook, normalized, shape, ['batch', 'pos', 1]);
    const flat = g.op('Reshape', [hooked, toFlat]);
    selected = g.op('Add', [g.op('Mul', [g.op('Gather', [flat, rows], { axis: 0 }), lnfW]), lnfB]);
  } else {
    const flat = g.op('Gather', [g.op('Reshape', [resid, toFlat]), rows], { axis: 0 });
    selected = g.op('LayerNormalization', [flat, lnfW, lnfB], { axis: -1, epsilon: cfg.layerNormEps });
  }
  g.output('logits', g.op('Gemm', [selected, unembed], { transB: 1 }), DataType.FLOAT, ['rows', cfg.dVocab]);
  return g.build('unembed');
}
