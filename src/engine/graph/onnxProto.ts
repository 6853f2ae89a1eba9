/**
 * A protobuf encoder for the part of onnx.proto that PatchLens writes (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto). Field numbers are onnx.proto's. The published JS bindings
 * of onnx.proto sit on an old protobufjs and carry the whole schema; the graphs written here hold no
 * weights (those are fed as inputs), so a small writer is all that is needed.
 */

export const enum DataType {
  FLOAT = 1,
  INT64 = 7,
  BOOL = 9,
}

export interface TensorValue {
  readonly name?: string;
  readonly dataType: DataType;
  readonly dims: readonly number[];
  readonly raw: Uint8Array;
}

export type AttributeValue =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'tensor'; readonly value: TensorValue };

export interface NodeValue {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, AttributeValue>>;
}

/** A dimension is a fixed size or a symbolic name (a dynamic axis such as 'batch'). */
export type Dim = number | string;

export interface ValueInfo {
  readonly name: string;
  readonly elemType: DataType;
  readonly shape: readonly Dim[];
}

export interface GraphValue {
  readonly name: string;
  readonly nodes: readonly NodeValue[];
  readonly initializers: readonly TensorValue[];
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
}

export interface ModelValue {
  readonly irVersion: number;
  readonly opsets: readonly { domain: string; version: number }[];
  readonly producer: string;
  readonly graph: GraphValue;
}

const textEncoder = new TextEncoder();

class Writer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  /** Varints carry int64 values in two's complement, so a negative number takes ten bytes. */
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  tag(field: number, wireType: 0 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, textEncoder.encode(value));
  }

  message(field: number, build: (w: Writer) => void): void {
    const w = new Writer();
    build(w);
    this.bytes(field, w.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function writeTensor(w: Writer, t: TensorValue): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  if (t.name !== undefined) w.string(8, t.name);
  w.bytes(9, t.raw);
}

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, tensor: 4, ints: 7 } as const;

function writeAttribute(w: Writer, name: string, a: AttributeValue): void {
  w.string(1, name);
  switch (a.kind) {
    case 'float':
      w.float(2, a.value);
      break;
    case 'int':
      w.int(3, a.value);
      break;
    case 'string':
      w.string(4, a.value);
      break;
    case 'tensor':
      w.message(5, (t) => writeTensor(t, a.value));
      break;
    case 'ints':
      for (const v of a.value) w.int(8, v);
      break;
  }
  w.int(20, ATTRIBUTE_TYPE[a.kind]);
}

function writeNode(w: Writer, n: NodeValue): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes ?? {})) w.message(5, (aw) => writeAttribute(aw, name, a));
  if (n.domain !== undefined) w.string(7, n.domain);
}

function writeValueInfo(w: Writer, v: ValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensorType) => {
      tensorType.int(1, v.elemType);
      tensorType.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
        }
      });
    }),
  );
}

function writeGraph(w: Writer, g: GraphValue): void {
  for (const n of g.nodes) w.message(1, (nw) => writeNode(nw, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (tw) => writeTensor(tw, t));
  for (const i of g.inputs) w.message(11, (iw) => writeValueInfo(iw, i));
  for (const o of g.outputs) w.message(12, (ow) => writeValueInfo(ow, o));
}

export function encodeModel(m: ModelValue): Uint8Array {
  const w = new Writer();
  w.int(1, m.irVersion);
  w.string(2, m.producer);
  w.message(7, (gw) => writeGraph(gw, m.graph));
  for (const o of m.opsets) {
    w.message(8, (ow) => {
      ow.string(1, o.domain);
      ow.int(2, o.version);
    });
  }
  return w.finish();
}
