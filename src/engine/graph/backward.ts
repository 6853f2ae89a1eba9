/**
 * Reverse-mode differentiation of the graphs GraphBuilder collects: given the gradient of some values
 * (the seeds, fed as graph inputs) it appends the ops that compute the gradient of other values (the
 * hook points). Written here rather than taken from onnxruntime's training build, which is not in
 * onnxruntime-node, and rather than per family, so that every model family the graphs describe gets
 * gradients with no new code: a rule per op of the builder's op set, nothing per architecture.
 *
 * Only activations are differentiated: weights are graph inputs that no hook point depends on, so the
 * pass never computes a weight gradient. Integer and boolean values (shapes, positions, masks) carry no
 * gradient. Shapes are symbolic, so a broadcast input's gradient is reduced with ops that read the shapes
 * at run time; ranks are inferred statically, which the transposes of a MatMul's gradient need.
 */
import type { GraphBuilder } from './graphBuilder';
import type { NodeValue, TensorValue } from './onnxProto';

/** Ops whose outputs hold no derivative (shapes, indices, comparisons). */
const NON_DIFFERENTIABLE = new Set(['Shape', 'Size', 'Range', 'Equal', 'Less', 'Greater', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Not', 'NonZero', 'ConstantOfShape']);

/** Inputs of each op a gradient flows into (the others are indices, shapes, masks or exponents). */
function differentiableInputs(n: NodeValue): number[] {
  switch (n.opType) {
    case 'Where':
      return [1, 2];
    case 'Gemm':
    case 'Pow':
    case 'Gather':
    case 'Reshape':
    case 'Expand':
    case 'Slice':
    case 'Split':
    case 'Unsqueeze':
    case 'Squeeze':
    case 'ReduceMean':
    case 'LayerNormalization':
      return [0];
    default:
      return n.inputs.map((_, i) => i);
  }
}

function intValues(t: TensorValue): number[] {
  return Array.from(new BigInt64Array(t.raw.slice().buffer), Number);
}

/** Static ranks of every value, and the contents of small int64 constants (axes, shapes). */
function inferRanks(g: GraphBuilder): { rank: Map<string, number>; ints: Map<string, number[]> } {
  const { nodes, inputs, initializers } = g.contents();
  const rank = new Map<string, number>();
  const ints = new Map<string, number[]>();
  for (const i of inputs) rank.set(i.name, i.shape.length);
  for (const t of initializers) {
    rank.set(t.name!, t.dims.length);
    if (t.dataType === 7) ints.set(t.name!, intValues(t));
  }
  // The length of a 1-D int64 value when it is known (Shape gives the rank of its input).
  const length = (v: string): number => {
    const c = ints.get(v);
    if (c) return c.length;
    const l = shapeLength.get(v);
    if (l === undefined) throw new Error(`backward: the length of shape value ${v} is unknown`);
    return l;
  };
  const shapeLength = new Map<string, number>();
  const r = (v: string) => {
    const k = rank.get(v);
    if (k === undefined) throw new Error(`backward: no rank for ${v}`);
    return k;
  };
  for (const n of nodes) {
    const ins = n.inputs.map((v) => (v === '' ? 0 : r(v)));
    let out: number;
    switch (n.opType) {
      case 'Shape':
        out = 1;
        shapeLength.set(n.outputs[0]!, ins[0]!);
        break;
      case 'Size':
        out = 0;
        break;
      case 'Reshape':
        out = length(n.inputs[1]!);
        break;
      case 'Expand':
        out = Math.max(ins[0]!, length(n.inputs[1]!));
        break;
      case 'Unsqueeze':
        out = ins[0]! + ints.get(n.inputs[1]!)!.length;
        break;
      case 'Squeeze':
        out = ins[0]! - ints.get(n.inputs[1]!)!.length;
        break;
      case 'Gather':
        out = ins[0]! - 1 + ins[1]!;
        break;
      case 'Gemm':
        out = 2;
        break;
      case 'Range':
        out = 1;
        break;
      default:
        // Elementwise ops broadcast to the largest rank; the rest keep their first input's.
        out = Math.max(...ins);
    }
    for (const o of n.outputs) rank.set(o, out);
  }
  return { rank, ints };
}

/**
 * Appends to `g` the gradient of the seeded values with respect to each value in `wrt`. `seeds` maps a
 * value of the forward graph to the name of its gradient (a graph input of the same shape). Returns the
 * gradient value of each `wrt` entry (zeros where no seed depends on it).
 */
export function appendBackward(g: GraphBuilder, seeds: ReadonlyMap<string, string>, wrt: readonly string[]): Map<string, string> {
  const { nodes } = g.contents();
  const forward = [...nodes];
  const { rank, ints } = inferRanks(g);
  const rankOf = (v: string) => rank.get(v)!;

  // Values that depend on a wrt value through differentiable inputs: only those get gradients.
  const live = new Set(wrt);
  for (const n of forward) {
    if (NON_DIFFERENTIABLE.has(n.opType)) continue;
    if (differentiableInputs(n).some((i) => live.has(n.inputs[i]!))) for (const o of n.outputs) live.add(o);
  }

  const grads = new Map<string, string>(seeds);
  const add = (v: string, gv: string) => {
    const prev = grads.get(v);
    grads.set(v, prev ? g.op('Add', [prev, gv]) : gv);
  };
  const zero = g.constFloat([0], []);
  const one = g.constFloat([1], []);
  const zerosLike = (v: string) => g.op('ConstantOfShape', [g.op('Shape', [v])], { value: { kind: 'tensor', value: { dataType: 1, dims: [1], raw: new Uint8Array(4) } } });

  /** Sums a gradient of broadcast shape down to the shape of `x`: leading axes statically, size-1 axes by their run-time shape. */
  const unbroadcast = (gv: string, gRank: number, x: string): string => {
    const xr = rankOf(x);
    let out = gv;
    if (gRank > xr) out = g.op('ReduceSum', [out, g.constInt64(Array.from({ length: gRank - xr }, (_, i) => i))], { keepdims: 0 });
    if (xr === 0) return out;
    const ones = g.op('Equal', [g.op('Shape', [x]), g.constInt64([1], [])]);
    const axes = g.op('Reshape', [g.op('NonZero', [ones]), g.constInt64([-1])]);
    return g.op('ReduceSum', [out, axes], { keepdims: 1, noop_with_empty_axes: 1 });
  };
  const lastTwo = (v: string) => {
    const k = rankOf(v);
    return g.op('Transpose', [v], { perm: [...Array.from({ length: k - 2 }, (_, i) => i), k - 1, k - 2] });
  };
  const attr = (n: NodeValue, name: string): unknown => n.attributes?.[name]?.value;

  for (let idx = forward.length - 1; idx >= 0; idx--) {
    const n = forward[idx]!;
    if (NON_DIFFERENTIABLE.has(n.opType) || !n.outputs.some((o) => live.has(o) && grads.has(o))) continue;
    const targets = differentiableInputs(n).filter((i) => live.has(n.inputs[i]!));
    if (targets.length === 0) continue;
    const out = n.outputs[0]!;
    const gOut = n.opType === 'Split' ? '' : grads.get(out)!;
    const gr = rankOf(out);
    const [a, b] = [n.inputs[0]!, n.inputs[1]!];
    const want = (i: number) => targets.includes(i);
    switch (n.opType) {
      case 'Identity':
        add(a, gOut);
        break;
      case 'Add':
        if (want(0)) add(a, unbroadcast(gOut, gr, a));
        if (want(1)) add(b, unbroadcast(gOut, gr, b));
        break;
      case 'Sub':
        if (want(0)) add(a, unbroadcast(gOut, gr, a));
        if (want(1)) add(b, unbroadcast(g.op('Neg', [gOut]), gr, b));
        break;
      case 'Mul':
        if (want(0)) add(a, unbroadcast(g.op('Mul', [gOut, b]), gr, a));
        if (want(1)) add(b, unbroadcast(g.op('Mul', [gOut, a]), gr, b));
        break;
      case 'Div':
        if (want(0)) add(a, unbroadcast(g.op('Div', [gOut, b]), gr, a));
        if (want(1)) add(b, unbroadcast(g.op('Neg', [g.op('Div', [g.op('Mul', [gOut, out]), b])]), gr, b));
        break;
      case 'Neg':
        add(a, g.op('Neg', [gOut]));
        break;
      case 'Pow': {
        const d = g.op('Mul', [b, g.op('Pow', [a, g.op('Sub', [b, one])])]);
        add(a, unbroadcast(g.op('Mul', [gOut, d]), gr, a));
        break;
      }
      case 'Sqrt':
        add(a, g.op('Div', [gOut, g.op('Mul', [out, g.constFloat([2], [])])]));
        break;
      case 'Tanh':
        add(a, g.op('Mul', [gOut, g.op('Sub', [one, g.op('Mul', [out, out])])]));
        break;
      case 'Sigmoid':
        add(a, g.op('Mul', [gOut, g.op('Mul', [out, g.op('Sub', [one, out])])]));
        break;
      case 'Relu':
        add(a, g.op('Where', [g.op('Greater', [a, zero]), gOut, zero]));
        break;
      case 'Gelu':
        add(a, g.op('Mul', [gOut, geluDerivative(g, a, attr(n, 'approximate') === 'tanh')]));
        break;
      case 'Softmax': {
        if (attr(n, 'axis') !== -1 && attr(n, 'axis') !== gr - 1) throw new Error('backward: Softmax is differentiated over its last axis only');
        const dot = g.op('ReduceSum', [g.op('Mul', [gOut, out]), g.constInt64([-1])], { keepdims: 1 });
        add(a, g.op('Mul', [out, g.op('Sub', [gOut, dot])]));
        break;
      }
      case 'MatMul':
        if (want(0)) add(a, unbroadcast(g.op('MatMul', [gOut, lastTwo(b)]), gr, a));
        if (want(1)) add(b, unbroadcast(g.op('MatMul', [lastTwo(a), gOut]), gr, b));
        break;
      case 'Gemm': {
        if (attr(n, 'transB') !== 1 || attr(n, 'transA') || n.inputs.length > 2) throw new Error('backward: Gemm is differentiated as a @ b^T only');
        add(a, g.op('MatMul', [gOut, b]));
        break;
      }
      case 'Where':
        if (want(1)) add(n.inputs[1]!, unbroadcast(g.op('Where', [a, gOut, zero]), gr, n.inputs[1]!));
        if (want(2)) add(n.inputs[2]!, unbroadcast(g.op('Where', [a, zero, gOut]), gr, n.inputs[2]!));
        break;
      case 'Reshape':
        add(a, g.op('Reshape', [gOut, g.op('Shape', [a])]));
        break;
      case 'Expand':
        add(a, unbroadcast(gOut, gr, a));
        break;
      case 'Transpose': {
        const perm = attr(n, 'perm') as number[];
        const inverse = perm.map((_, i) => perm.indexOf(i));
        add(a, g.op('Transpose', [gOut], { perm: inverse }));
        break;
      }
      case 'Unsqueeze':
        add(a, g.op('Squeeze', [gOut, b]));
        break;
      case 'Squeeze':
        add(a, g.op('Unsqueeze', [gOut, b]));
        break;
      case 'ReduceMean': {
        if (attr(n, 'keepdims') !== 1) throw new Error('backward: ReduceMean is differentiated with keepdims=1 only');
        const count = g.op('Cast', [g.op('Div', [g.op('Size', [a]), g.op('Size', [out])])], { to: 1 });
        add(a, g.op('Expand', [g.op('Div', [gOut, count]), g.op('Shape', [a])]));
        break;
      }
      case 'LayerNormalization': {
        // dx = (g·w − mean(g·w) − x̂ · mean(g·w · x̂)) / σ over the last axis, x̂ and σ recomputed from x: the
        // fused op stays in the forward pass (its gain and bias are weights, which get no gradient).
        if (attr(n, 'axis') !== -1 && attr(n, 'axis') !== gr - 1) throw new Error('backward: LayerNormalization is differentiated over its last axis only');
        const last = g.constInt64([-1]);
        const mean = (v: string) => g.op('ReduceMean', [v, last], { keepdims: 1 });
        const centred = g.op('Sub', [a, mean(a)]);
        const sigma = g.op('Sqrt', [g.op('Add', [mean(g.op('Mul', [centred, centred])), g.constFloat([(attr(n, 'epsilon') as number | undefined) ?? 1e-5], [])])]);
        const xhat = g.op('Div', [centred, sigma]);
        const gw = g.op('Mul', [gOut, b]);
        const inner = g.op('Sub', [g.op('Sub', [gw, mean(gw)]), g.op('Mul', [xhat, mean(g.op('Mul', [gw, xhat]))])]);
        add(a, g.op('Div', [inner, sigma]));
        break;
      }
      case 'Gather': {
        if ((attr(n, 'axis') ?? 0) !== 0) throw new Error('backward: Gather is differentiated on axis 0 only');
        const indices = g.op('Unsqueeze', [b, g.constInt64([-1])]);
        add(a, g.op('ScatterND', [zerosLike(a), indices, gOut], { reduction: 'add' }));
        break;
      }
      case 'Split': {
        const axis = (attr(n, 'axis') as number | undefined) ?? 0;
        const parts = n.outputs.map((o) => grads.get(o) ?? zerosLike(o));
        add(a, g.op('Concat', parts, { axis }));
        break;
      }
      case 'Concat': {
        const axis = attr(n, 'axis') as number;
        const sizes = g.op(
          'Concat',
          n.inputs.map((x) => g.op('Gather', [g.op('Shape', [x]), g.constInt64([axis])], { axis: 0 })),
          { axis: 0 },
        );
        const parts = g.opN('Split', [gOut, sizes], n.inputs.length, { axis });
        n.inputs.forEach((x, i) => {
          if (want(i)) add(x, parts[i]!);
        });
        break;
      }
      case 'Slice': {
        // Slices here are constant, unit-step, along one axis: the gradient is the slice's gradient padded with zeros.
        const [starts, ends, axes] = [ints.get(n.inputs[1]!), ints.get(n.inputs[2]!), ints.get(n.inputs[3]!)];
        if (!starts || !ends || !axes || axes.length !== 1 || n.inputs.length > 4 || starts[0]! < 0)
          throw new Error('backward: Slice is differentiated for one constant axis only');
        const k = rankOf(a);
        const axis = (axes[0]! + k) % k;
        const dim = g.op('Gather', [g.op('Shape', [a]), g.constInt64([axis])], { axis: 0 });
        const end = g.op('Min', [dim, g.constInt64([ends[0]!])]);
        const after = g.op('Sub', [dim, end]);
        const zeros = (m: number) => (m > 0 ? [g.constInt64(new Array<number>(m).fill(0))] : []);
        const pads = g.op('Concat', [...zeros(axis), g.constInt64([starts[0]!]), ...zeros(k - 1 - axis + axis), after, ...zeros(k - 1 - axis)], { axis: 0 });
        add(a, g.op('Pad', [gOut, pads]));
        break;
      }
      default:
        throw new Error(`backward: no gradient rule for ${n.opType}`);
    }
  }
  return new Map(wrt.map((v) => [v, grads.get(v) ?? zerosLike(v)]));
}

/** d/dx of GELU: exact (erf) or its tanh approximation, as the forward's attribute says. */
function geluDerivative(g: GraphBuilder, x: string, tanh: boolean): string {
  const c = (v: number) => g.constFloat([v], []);
  const half = c(0.5);
  if (!tanh) {
    const cdf = g.op('Mul', [half, g.op('Add', [c(1), g.op('Erf', [g.op('Mul', [x, c(Math.SQRT1_2)])])])]);
    const pdf = g.op('Mul', [c(1 / Math.sqrt(2 * Math.PI)), g.op('Exp', [g.op('Mul', [c(-0.5), g.op('Mul', [x, x])])])]);
    return g.op('Add', [cdf, g.op('Mul', [x, pdf])]);
  }
  const k = Math.sqrt(2 / Math.PI);
  const x2 = g.op('Mul', [x, x]);
  const t = g.op('Tanh', [g.op('Mul', [c(k), g.op('Mul', [x, g.op('Add', [c(1), g.op('Mul', [c(0.044715), x2])])])])]);
  const du = g.op('Mul', [c(k), g.op('Add', [c(1), g.op('Mul', [c(3 * 0.044715), x2])])]);
  const left = g.op('Mul', [half, g.op('Add', [c(1), t])]);
  const right = g.op('Mul', [g.op('Mul', [half, x]), g.op('Mul', [g.op('Sub', [c(1), g.op('Mul', [t, t])]), du])]);
  return g.op('Add', [left, right]);
}
