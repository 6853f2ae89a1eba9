import type { Ablation } from '../../protocol/spec';
import { UserError } from '../../common/userError';
import { hookInfo, parseHookName } from '../hooks';
import type { ModelConfig } from '../model/config';
import type { Tensor32 } from '../tensor';

/**
 * What an ablation writes, for each hook of the clean runs' cache: zeros, or the hook's mean over the
 * dataset's clean runs, at each position (over the pairs long enough to have it) or over every token of
 * every pair. Sums are taken in float64. Positions past a pair's end (padding) get the same value; no
 * position the metric reads can see them.
 */
export function ablationSource(
  cfg: ModelConfig,
  clean: ReadonlyMap<string, Tensor32>,
  names: readonly string[],
  kind: Ablation,
  lengths: readonly number[],
): Map<string, Tensor32> {
  const out = new Map<string, Tensor32>();
  for (const name of names) {
    const act = clean.get(name)!;
    if (kind === 'zero') {
      out.set(name, { shape: act.shape, data: new Float32Array(act.data.length) });
      continue;
    }
    const ref = parseHookName(name, cfg)!;
    const layout = hookInfo(cfg, ref.hook).layout;
    if (layout === 'attn' && kind === 'mean_over_positions') {
      throw new UserError(
        `${name} is an attention pattern, whose entries belong to a destination and a source position and have no mean over positions; use ablation "mean" or "zero", or leave out the pattern sweeps`,
      );
    }
    out.set(name, layout === 'attn' ? patternMean(act, lengths) : positionMean(act, lengths, kind === 'mean_over_positions'));
  }
  return out;
}

/** [n, P, ...] → the mean vector at each position over the pairs that reach it, or one mean over every real token. */
function positionMean(act: Tensor32, lengths: readonly number[], overPositions: boolean): Tensor32 {
  const [n, P] = act.shape as [number, number];
  const w = act.data.length / (n * P);
  const data = new Float32Array(act.data.length);
  const groups = overPositions ? [Array.from({ length: P }, (_, p) => p)] : Array.from({ length: P }, (_, p) => [p]);
  for (const positions of groups) {
    const sum = new Float64Array(w);
    let count = 0;
    for (let i = 0; i < n; i++) {
      for (const p of positions) {
        if (p >= lengths[i]!) continue;
        const base = (i * P + p) * w;
        for (let k = 0; k < w; k++) sum[k] += act.data[base + k]!;
        count++;
      }
    }
    const mean = Float32Array.from(sum, (x) => x / Math.max(1, count));
    for (let i = 0; i < n; i++) for (const p of positions) data.set(mean, (i * P + p) * w);
  }
  return { shape: act.shape, data };
}

/** [n, H, dest, src] → each entry's mean over the pairs whose prompts reach its destination. */
function patternMean(act: Tensor32, lengths: readonly number[]): Tensor32 {
  const [n, H, P] = act.shape as [number, number, number];
  const data = new Float32Array(act.data.length);
  const row = H * P * P;
  for (let h = 0; h < H; h++) {
    for (let d = 0; d < P; d++) {
      const reach = lengths.map((len, i) => (d < len ? i : -1)).filter((i) => i >= 0);
      for (let s = 0; s < P; s++) {
        const at = (h * P + d) * P + s;
        let sum = 0;
        for (const i of reach) sum += act.data[i * row + at]!;
        const mean = sum / Math.max(1, reach.length);
        for (let i = 0; i < n; i++) data[i * row + at] = mean;
      }
    }
  }
  return { shape: act.shape, data };
}
