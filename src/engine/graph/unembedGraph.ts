import { globalHooks } from '../hooks';
import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './graphBuilder';
import { type HookVariant, isHooked } from './hookPoint';
import { norm } from './layers';
import { DataType } from './onnxProto';

/**
 * Final norm and unembedding, evaluated only at the flat (row * pos + p) indices in `rows`, since most
 * metrics read one position. When a ln_final hook is read or written the whole [batch, pos, d_model] is
 * normalised (the hooks hold every position); otherwise only the selected rows are.
 */
export function buildUnembedGraph(cfg: ModelConfig, v: HookVariant): Uint8Array {
  const g = new GraphBuilder();
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
  let logits = g.op('Gemm', [selected, unembed], { transB: 1 });
  if (cfg.unembedBias) logits = g.op('Add', [logits, g.input('bU', DataType.FLOAT, [cfg.dVocab])]);
  if (cfg.finalSoftcap) {
    const cap = g.constFloat([cfg.finalSoftcap], []);
    logits = g.op('Mul', [g.op('Tanh', [g.op('Div', [logits, cap])]), cap]);
  }
  g.output('logits', logits, DataType.FLOAT, ['rows', cfg.dVocab]);
  return g.build('unembed');
}
