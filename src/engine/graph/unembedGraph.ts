import { globalHooks } from '../hooks';
import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './graphBuilder';
import { type HookVariant, isHooked } from './hookPoint';
import { norm } from './layers';
import { DataType } from './onnxProto';

/**
 * With `columns`, only some logits of each row are computed: `cols` (int64 [rows, n]) names the tokens.
 * A logit difference needs two of a row's 50,257 logits, so the unembedding then costs two dot products.
 */
export interface UnembedVariant extends HookVariant {
  readonly columns?: boolean;
}

/**
 * Final norm and unembedding, evaluated only at the flat (row * pos + p) indices in `rows`, since most
 * metrics read one position. When a ln_final hook is read or written the whole [batch, pos, d_model] is
 * normalised (the hooks hold every position); otherwise only the selected rows are.
 */
export function buildUnembedGraph(cfg: ModelConfig, v: UnembedVariant): Uint8Array {
  const g = new GraphBuilder();
  writeUnembedGraph(g, cfg, v);
  return g.build('unembed');
}

/** The same graph written into `g` (gradients.ts appends its backward pass). */
export function writeUnembedGraph(g: GraphBuilder, cfg: ModelConfig, v: UnembedVariant): void {
  const hooks = globalHooks(cfg);
  const D = cfg.dModel;
  const layerNorm = cfg.norm === 'layernorm';
  const resid = g.input('resid', DataType.FLOAT, ['batch', 'pos', D]);
  const lnfW = g.input('lnfW', DataType.FLOAT, [D]);
  const lnfB = layerNorm ? g.input('lnfB', DataType.FLOAT, [D]) : undefined;
  const unembed = g.input('unembed', DataType.FLOAT, [cfg.dVocab, D]);
  const rows = g.input('rows', DataType.INT64, ['rows']);
  const toFlat = g.constInt64([-1, D]);
  const normHooks = { scale: hooks.get('ln_final.hook_scale')!, normalized: hooks.get('ln_final.hook_normalized')! };
  const final = (x: string) => norm(g, v, 'ln_final', normHooks, x, cfg.normEps, lnfW, lnfB);
  let selected: string;
  if (isHooked(v, 'ln_final.hook_scale') || isHooked(v, 'ln_final.hook_normalized')) {
    selected = g.op('Gather', [g.op('Reshape', [final(resid), toFlat]), rows], { axis: 0 });
  } else {
    selected = final(g.op('Gather', [g.op('Reshape', [resid, toFlat]), rows], { axis: 0 }));
  }
  let logits: string;
  let bias = cfg.unembedBias ? g.input('bU', DataType.FLOAT, [cfg.dVocab]) : undefined;
  if (v.columns) {
    const cols = g.input('cols', DataType.INT64, ['rows', 'cols']);
    const w = g.op('Gather', [unembed, cols], { axis: 0 }); // [rows, cols, D]
    logits = g.op('Squeeze', [g.op('MatMul', [w, g.op('Unsqueeze', [selected, g.constInt64([2])])]), g.constInt64([2])]);
    if (bias) bias = g.op('Gather', [bias, cols], { axis: 0 });
  } else logits = g.op('Gemm', [selected, unembed], { transB: 1 });
  if (bias) logits = g.op('Add', [logits, bias]);
  if (cfg.finalSoftcap) {
    const cap = g.constFloat([cfg.finalSoftcap], []);
    logits = g.op('Mul', [g.op('Tanh', [g.op('Div', [logits, cap])]), cap]);
  }
  g.output('logits', logits, DataType.FLOAT, ['rows', v.columns ? 'cols' : cfg.dVocab]);
}
