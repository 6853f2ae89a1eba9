import { globalHooks } from '../hooks';
import type { ModelConfig } from '../model/config';
import { GraphBuilder } from './graphBuilder';
import { hookPoint, type HookVariant } from './hookPoint';
import { DataType } from './onnxProto';

/**
 * Token (and learned position) embeddings: ids [batch, pos] -> the residual stream entering block 0.
 * Gemma's √d_model factor is applied here, before hook_embed, as TransformerLens folds it into W_E.
 * Shortformer positions are hooked here but added in each block's attention, not to the stream.
 */
export function buildEmbedGraph(cfg: ModelConfig, v: HookVariant): Uint8Array {
  const g = new GraphBuilder();
  writeEmbedGraph(g, cfg, v);
  return g.build('embed');
}

/** The same graph written into `g` (gradients.ts appends its backward pass). */
export function writeEmbedGraph(g: GraphBuilder, cfg: ModelConfig, v: HookVariant): void {
  const hooks = globalHooks(cfg);
  const D = cfg.dModel;
  const ids = g.input('ids', DataType.INT64, ['batch', 'pos']);
  const wte = g.input('wte', DataType.FLOAT, [cfg.dVocab, D]);
  let tokens = g.op('Gather', [wte, ids], { axis: 0 });
  if (cfg.embedScale !== undefined) tokens = g.op('Mul', [tokens, g.constFloat([cfg.embedScale], [])]);
  const embed = hookPoint(g, v, 'hook_embed', hooks.get('hook_embed')!, tokens);
  let resid = embed;
  if (cfg.positional !== 'rotary') {
    const wpe = g.input('wpe', DataType.FLOAT, [cfg.nCtx, D]);
    const nPos = g.op('Gather', [g.op('Shape', [ids]), g.constInt64([1], [])], { axis: 0 });
    const positions = g.op('Range', [g.constInt64([0], []), nPos, g.constInt64([1], [])]);
    const posRows = g.op('Gather', [wpe, positions], { axis: 0 });
    const posEmbed = hookPoint(g, v, 'hook_pos_embed', hooks.get('hook_pos_embed')!, g.op('Expand', [posRows, g.op('Shape', [embed])]));
    if (cfg.positional === 'learned') resid = g.op('Add', [embed, posEmbed]);
  }
  g.output('resid', resid, DataType.FLOAT, ['batch', 'pos', D]);
}
