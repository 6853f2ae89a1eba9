/**
 * Mulberry32: a 32-bit PRNG with integer arithmetic only, so every machine draws the same numbers from
 * a seed. Used wherever PatchLens must be reproducible: the induction batches, the built-in model's
 * weights, and the tests' random checkpoints.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Uniform numbers in [0, 1) from a seed. */
export function uniform(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

/** Integers in [lo, hi) from a seed. */
export function seededInts(seed: number): (lo: number, hi: number) => number {
  const u = uniform(seed);
  return (lo, hi) => lo + Math.floor(u() * (hi - lo));
}
