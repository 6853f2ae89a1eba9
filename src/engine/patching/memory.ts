import type { ModelConfig } from '../model/config';

/**
 * Bytes one batch row of a patched block run holds at its peak: residual copies, q/k/v, MLP activations,
 * attention scores and pattern, and the patch sources. An estimate on the safe side, used to size batches.
 */
export function bytesPerRow(cfg: ModelConfig, nPos: number): number {
  return 4 * nPos * (10 * cfg.dModel + 3 * cfg.dMlp + 4 * cfg.nHeads * nPos) + 4 * cfg.dVocab;
}
