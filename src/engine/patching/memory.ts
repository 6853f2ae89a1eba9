import type { ModelConfig } from '../model/config';

/**
 * Bytes one batch row of a patched block run holds at its peak: residual copies and norms, q/k/v (twice
 * when grouped-query heads are expanded), MLP activations (a third for the gate), attention scores and
 * pattern, and the patch sources. An estimate on the safe side, used to size batches.
 */
export function bytesPerRow(cfg: ModelConfig, nPos: number): number {
  const { dModel: D, dMlp: M, nHeads: H, dHead: E } = cfg;
  const mlp = cfg.attnOnly ? 0 : (cfg.gatedMlp ? 4 : 3) * M;
  return 4 * nPos * (10 * D + mlp + 4 * H * nPos + 4 * H * E) + 4 * cfg.dVocab;
}
