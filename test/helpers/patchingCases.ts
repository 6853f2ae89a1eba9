/**
 * Prompt pairs for the research-workflow tests: random tokens on a random checkpoint, pairs of different
 * lengths, with labelled positions that sit at a different index in each pair, and the float64
 * reference's logit-difference metric over the padded rows the engine runs.
 */
import type { ResolvedPair, ResolvedSpec, SweepName } from '../../src/protocol/spec';
import { seededInts, type TestModel } from './models';
import { refLogitDiff, type RefLabels } from './referencePatching';
import type { RefActivation } from './reference';

/** Pairs of the given lengths; each corrupts every other token. Labels: A one position, B two, END the last. */
export function labelledPairs(m: Pick<TestModel, 'cfg'>, seed: number, lengths: number[]): ResolvedPair[] {
  const rnd = seededInts(seed);
  const V = m.cfg.dVocab;
  return lengths.map((len) => {
    const clean = Array.from({ length: len }, () => rnd(0, V));
    const corrupted = clean.map((t, i) => (i % 2 === 1 ? rnd(0, V) : t));
    const a = rnd(1, len - 1);
    const b = rnd(0, len - 2);
    const answer = rnd(0, V);
    return { clean, corrupted, answer, wrong: (answer + 1) % V, labels: { A: [a], B: [b, b + 1], END: [len - 1] } };
  });
}

export function specOf(pairs: ResolvedPair[], sweeps: SweepName[], extra: Partial<ResolvedSpec> = {}): ResolvedSpec {
  const labels = pairs[0]!.labels ? Object.keys(pairs[0]!.labels) : undefined;
  return { name: 't', model: undefined, metric: 'logit_diff', sweeps, prependBos: false, pairs, ...(labels ? { labels } : {}), ...extra };
}

/** Rows right-padded with BOS to the longest, as the engine runs them (causality hides the padding). */
export const padded = (rows: number[][], bos: number): number[][] => {
  const n = Math.max(...rows.map((r) => r.length));
  return rows.map((r) => [...r, ...new Array<number>(n - r.length).fill(bos)]);
};

/** The clean and the corrupted prompts of `pairs`, each padded as the engine runs them. */
export const paddedPrompts = (pairs: readonly ResolvedPair[], bos: number): { clean: number[][]; corrupted: number[][] } => ({
  clean: padded(
    pairs.map((p) => p.clean),
    bos,
  ),
  corrupted: padded(
    pairs.map((p) => p.corrupted),
    bos,
  ),
});

/** The reference's labelled positions of a spec: at[label][row]. */
export const refLabels = (spec: ResolvedSpec): RefLabels => ({ at: spec.labels!.map((l) => spec.pairs.map((p) => p.labels![l]!)) });

/** The logit difference at each pair's own last token, mean over pairs. */
export const refMetricOf = (pairs: readonly ResolvedPair[]): ((l: RefActivation) => number) =>
  refLogitDiff(
    pairs.map((p) => p.clean.length - 1),
    pairs.map((p) => [p.answer!, p.wrong!]),
  );
