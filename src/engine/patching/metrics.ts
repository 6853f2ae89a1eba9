import type { Direction, MetricName, ResolvedPair } from '../../protocol/spec';
import { UserError } from '../../common/userError';

/**
 * A metric reads logits at a few positions of each prompt pair. `positions[i]` lists the positions of
 * pair i it reads; logits arrive as one block per evaluation: pairs in order, each pair's positions in
 * order, `dVocab` floats per position. Values are averaged over pairs (and over targets within a pair).
 */
export class Metric {
  readonly positions: number[][];
  readonly rowsPerEval: number;
  /**
   * For metrics that read a few logits of each row rather than a distribution (the logit differences):
   * the tokens of each evaluation row, `columnsPerRow` of them, row-major. An executor may then compute
   * only those logits and call `rawColumns`.
   */
  readonly columns: Int32Array | undefined;
  readonly columnsPerRow = 2;
  private cleanLogProbs: Float64Array[] | undefined;

  constructor(
    readonly name: MetricName,
    private readonly pairs: readonly ResolvedPair[],
    private readonly dVocab: number,
  ) {
    this.positions = pairs.map((p) => {
      if (p.targets && name !== 'logit_diff' && name !== 'normalized_logit_diff') return p.targets.map((t) => t.pos);
      return [p.clean.length - 1];
    });
    this.rowsPerEval = this.positions.reduce((a, p) => a + p.length, 0);
    this.columns = name === 'logit_diff' || name === 'normalized_logit_diff' ? Int32Array.from(pairs.flatMap((p) => [p.answer!, p.wrong!])) : undefined;
  }

  /** kl_divergence compares against the clean run's distribution at the same positions. */
  setCleanLogits(logits: Float32Array): void {
    const rows: Float64Array[] = [];
    for (let r = 0; r < this.rowsPerEval; r++) rows.push(logSoftmax(logits, r * this.dVocab, this.dVocab));
    this.cleanLogProbs = rows;
  }

  /**
   * The un-normalized value on one evaluation's logits starting at `offset` (in floats). For
   * normalized_logit_diff this is the plain logit difference; `normalize` maps it afterwards.
   */
  raw(logits: Float32Array, offset = 0): number {
    const V = this.dVocab;
    return this.average((pair, k, row) => this.positionValue(pair, k, logits, offset + row * V, row));
  }

  /** The same value from only the `columns` logits of each row ([rowsPerEval, columnsPerRow]). */
  rawColumns(values: Float32Array, offset = 0): number {
    if (!this.columns) throw new Error(`${this.name} needs whole rows of logits`);
    const C = this.columnsPerRow;
    // The logit differences read the answer's and the wrong token's logits: columns 0 and 1 of the row.
    return this.average((_pair, _k, row) => values[offset + row * C]! - values[offset + row * C + 1]!);
  }

  /**
   * The derivative of `raw` with respect to the logits it reads ([rowsPerEval, dVocab]): what
   * attribution's backward pass starts from.
   */
  gradient(logits: Float32Array): Float32Array {
    const V = this.dVocab;
    const out = new Float32Array(this.rowsPerEval * V);
    let row = 0;
    this.pairs.forEach((pair, i) => {
      const positions = this.positions[i]!;
      const weight = 1 / (positions.length * this.pairs.length);
      for (let k = 0; k < positions.length; k++, row++) {
        const base = row * V;
        if (this.columns) {
          out[base + pair.answer!] += weight;
          out[base + pair.wrong!] -= weight;
          continue;
        }
        const lse = logSumExp(logits, base, V);
        const q = (v: number) => Math.exp(logits[base + v]! - lse);
        if (this.name === 'kl_divergence') {
          // KL(p || q) = Σ p (log p - log q): d/dlogit_v = q_v - p_v.
          const clean = this.cleanLogProbs![row]!;
          for (let v = 0; v < V; v++) out[base + v] = weight * (q(v) - Math.exp(clean[v]!));
          continue;
        }
        const token = pair.targets ? pair.targets[k]!.token : pair.answer!;
        // log q_t: d/dlogit_v = [v = t] - q_v; q_t scales that by q_t.
        const scale = this.name === 'answer_prob' ? weight * q(token) : weight;
        for (let v = 0; v < V; v++) out[base + v] = -scale * q(v);
        out[base + token] += scale;
      }
    });
    return out;
  }

  /** The derivative of `rawColumns` with respect to the columns it reads ([rowsPerEval, columnsPerRow]). */
  gradientColumns(): Float32Array {
    if (!this.columns) throw new Error(`${this.name} needs whole rows of logits`);
    const C = this.columnsPerRow;
    const out = new Float32Array(this.rowsPerEval * C);
    let row = 0;
    this.positions.forEach((positions) => {
      const weight = 1 / (positions.length * this.pairs.length);
      for (let k = 0; k < positions.length; k++, row++) {
        out[row * C] = weight;
        out[row * C + 1] = -weight;
      }
    });
    return out;
  }

  /** Mean over pairs of the mean over each pair's positions. */
  private average(value: (pair: ResolvedPair, k: number, row: number) => number): number {
    let total = 0;
    let row = 0;
    for (let i = 0; i < this.pairs.length; i++) {
      const positions = this.positions[i]!;
      let pairTotal = 0;
      for (let k = 0; k < positions.length; k++, row++) pairTotal += value(this.pairs[i]!, k, row);
      total += pairTotal / positions.length;
    }
    return total / this.pairs.length;
  }

  private positionValue(pair: ResolvedPair, k: number, logits: Float32Array, base: number, row: number): number {
    const V = this.dVocab;
    switch (this.name) {
      case 'logit_diff':
      case 'normalized_logit_diff':
        return logits[base + pair.answer!]! - logits[base + pair.wrong!]!;
      case 'answer_logprob':
      case 'answer_prob': {
        const token = pair.targets ? pair.targets[k]!.token : pair.answer!;
        const lp = logits[base + token]! - logSumExp(logits, base, V);
        return this.name === 'answer_prob' ? Math.exp(lp) : lp;
      }
      case 'kl_divergence': {
        if (!this.cleanLogProbs) throw new Error('kl_divergence needs the clean logits first');
        const clean = this.cleanLogProbs[row]!;
        const lse = logSumExp(logits, base, V);
        let kl = 0;
        for (let v = 0; v < V; v++) {
          const p = Math.exp(clean[v]!);
          if (p > 0) kl += p * (clean[v]! - (logits[base + v]! - lse));
        }
        return kl;
      }
    }
  }

  /**
   * Maps raw values to the reported metric; only normalized_logit_diff changes them: 0 is the run the
   * patches went into (the corrupted run when denoising, the clean run when noising), 1 the run their
   * values came from.
   */
  normalize(raw: number, baselines: { clean: number; corrupted?: number }, direction: Direction = 'denoising'): number {
    if (this.name !== 'normalized_logit_diff') return raw;
    const [none, full] = direction === 'noising' ? [baselines.clean, baselines.corrupted!] : [baselines.corrupted!, baselines.clean];
    return (raw - none) / (full - none);
  }

  /** A normalized metric is undefined when its baselines coincide: say so instead of printing NaN. */
  checkBaselines(b: { clean: number; corrupted?: number }): void {
    for (const [which, v] of Object.entries(b)) {
      if (!Number.isFinite(v)) throw new UserError(`the ${this.name} of the ${which} run is ${v}; check the prompts and answers`);
    }
    if (this.name !== 'normalized_logit_diff' || b.corrupted === undefined) return;
    const scale = Math.max(1, Math.abs(b.clean), Math.abs(b.corrupted));
    if (Math.abs(b.clean - b.corrupted) <= 1e-6 * scale) {
      throw new UserError(
        `normalized_logit_diff is undefined: the clean and corrupted logit differences are equal (clean ${b.clean}, corrupted ${b.corrupted}); ` +
          'use metric logit_diff, or prompts whose corruption changes the answer',
      );
    }
  }
}

function logSumExp(x: Float32Array, base: number, n: number): number {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[base + i]! > max) max = x[base + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(x[base + i]! - max);
  return max + Math.log(sum);
}

function logSoftmax(x: Float32Array, base: number, n: number): Float64Array {
  const lse = logSumExp(x, base, n);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = x[base + i]! - lse;
  return out;
}
