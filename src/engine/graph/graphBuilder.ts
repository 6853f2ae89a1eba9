import { type AttributeValue, DataType, type Dim, encodeModel, type NodeValue, type TensorValue, type ValueInfo } from './onnxProto';

/** Opset 20: LayerNormalization (17) and Gelu with approximate='tanh' (20) are native ops there. */
const OPSET = 20;
const IR_VERSION = 9;

type Attrs = Record<string, number | string | readonly number[] | AttributeValue>;

function attribute(v: Attrs[string]): AttributeValue {
  if (typeof v === 'string') return { kind: 'string', value: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { kind: 'int', value: v } : { kind: 'float', value: v };
  if (Array.isArray(v)) return { kind: 'ints', value: v };
  return v as AttributeValue;
}

/** Collects an ONNX graph op by op; every value gets a fresh name unless the caller names it. */
export class GraphBuilder {
  private readonly nodes: NodeValue[] = [];
  private readonly initializers: TensorValue[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private counter = 0;

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  input(name: string, elemType: DataType, shape: readonly Dim[]): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  output(name: string, value: string, elemType: DataType, shape: readonly Dim[]): void {
    if (name !== value) this.nodes.push({ opType: 'Identity', inputs: [value], outputs: [name] });
    this.outputs.push({ name, elemType, shape });
  }

  op(opType: string, inputs: readonly string[], attrs: Attrs = {}): string {
    return this.opN(opType, inputs, 1, attrs)[0]!;
  }

  opN(opType: string, inputs: readonly string[], nOutputs: number, attrs: Attrs = {}): string[] {
    const outputs = Array.from({ length: nOutputs }, () => this.fresh(opType));
    const attributes = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, attribute(v)]));
    this.nodes.push({ opType, inputs, outputs, attributes });
    return outputs;
  }

  constInt64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const raw = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer);
    return this.constant(DataType.INT64, dims, raw);
  }

  constFloat(values: readonly number[] | Float32Array, dims: readonly number[] = [values.length]): string {
    return this.constant(DataType.FLOAT, dims, new Uint8Array(Float32Array.from(values).buffer));
  }

  private constant(dataType: DataType, dims: readonly number[], raw: Uint8Array): string {
    const name = this.fresh('const');
    this.initializers.push({ name, dataType, dims, raw });
    return name;
  }

  /** What has been collected so far, for passes over the graph (backward.ts differentiates it). */
  contents(): { readonly nodes: readonly NodeValue[]; readonly inputs: readonly ValueInfo[]; readonly initializers: readonly TensorValue[] } {
    return { nodes: this.nodes, inputs: this.inputs, initializers: this.initializers };
  }

  /**
   * The graph; with `keep`, only those outputs and the nodes they need (a gradient graph's forward half
   * writes outputs of its own that onnxruntime would otherwise compute and copy on every run).
   */
  build(name: string, keep?: ReadonlySet<string>): Uint8Array {
    let nodes: readonly NodeValue[] = this.nodes;
    let outputs: readonly ValueInfo[] = this.outputs;
    if (keep) {
      outputs = outputs.filter((o) => keep.has(o.name));
      const needed = new Set(outputs.map((o) => o.name));
      const kept: NodeValue[] = [];
      // Nodes are collected in dependency order, so one pass from the end finds everything the outputs need.
      for (let i = nodes.length - 1; i >= 0; i--) {
        const n = nodes[i]!;
        if (!n.outputs.some((o) => needed.has(o))) continue;
        kept.push(n);
        for (const v of n.inputs) needed.add(v);
      }
      nodes = kept.reverse();
    }
    return encodeModel({
      irVersion: IR_VERSION,
      producer: 'patchlens',
      opsets: [{ domain: '', version: OPSET }],
      graph: { name, nodes, initializers: this.initializers, inputs: this.inputs, outputs },
    });
  }
}
