/**
 * Gradients on the float64 reference, by central finite differences along a direction: (M(a + εv) −
 * M(a − εv)) / 2ε at one hook point. Finite differences rather than a reverse mode of the reference:
 * a second reverse-mode implementation would repeat the derivations under test (a shared mistake would
 * pass), while a difference quotient needs nothing but the forward pass the reference already checks
 * against TransformerLens. In float64 with ε = 1e-5 its truncation error (ε² × the third derivative) and
 * rounding error (1e-16 / ε) are both far below the float32 engine's, so it serves as the exact value.
 * PyTorch autograd's gradients enter through the AtP fixtures (test/fixtures/atp/, tlref_atp.py).
 */
import { uniform } from '../../src/engine/random';
import { referenceForward, type RefActivation, type RefModel } from './reference';

/** d/dε M(a + ε·v) at ε = 0, where `a` is hook `name`'s activation and `v` is given per element. */
export function referenceDirectional(model: RefModel, ids: number[][], metric: (logits: RefActivation) => number, name: string, v: Float64Array, eps = 1e-5): number {
  const at = (s: number) =>
    metric(
      referenceForward(model, ids, (hook, act) => {
        if (hook !== name) return;
        if (act.data.length !== v.length) throw new Error(`direction for ${name} has ${v.length} values, the activation ${act.data.length}`);
        for (let i = 0; i < v.length; i++) act.data[i]! += s * v[i]!;
      }).logits,
    );
  return (at(eps) - at(-eps)) / (2 * eps);
}

/** A random direction of unit-scale entries, zero where the activation is -Infinity (masked attention scores). */
export function randomDirection(act: RefActivation, seed: number): Float64Array {
  const u = uniform(seed);
  return Float64Array.from(act.data, (a) => (Number.isFinite(a) ? 2 * u() - 1 : 0));
}
