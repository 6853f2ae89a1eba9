/**
 * A writer of torch.save's file format, for tests: a zip of stored entries (`<root>/data.pkl`, the pickle,
 * and `<root>/data/<key>`, each storage's raw bytes, 64-byte aligned as torch aligns them, with the zip64
 * end records torch writes) and a pickle of a state dict in the opcodes torch's protocol-2 pickler emits.
 * The Pickler is also how tests write hostile pickles that torch itself never would.
 */
import { writeFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import type { Tensor32 } from '../../../src/engine/tensor';

/** Pickle opcodes, written one call at a time. */
export class Pickler {
  private readonly parts: Buffer[] = [];

  raw(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  op(code: string): this {
    return this.raw(code.charCodeAt(0));
  }
  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  global(module: string, name: string): this {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    this.parts.push(Buffer.from('X'), len, b);
    return this;
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) {
      const b = Buffer.alloc(4);
      b.writeInt32LE(n);
      this.parts.push(Buffer.from('J'), b);
      return this;
    }
    // LONG1, as Python writes integers beyond 32 bits.
    const bytes: number[] = [];
    let v = BigInt(n);
    for (let i = 0; i < 8; i++, v >>= 8n) bytes.push(Number(v & 0xffn));
    return this.raw(0x8a, 8, ...bytes);
  }
  mark(): this {
    return this.op('(');
  }
  tuple(n?: 0 | 1 | 2 | 3): this {
    if (n === undefined) return this.op('t');
    return n === 0 ? this.op(')') : this.raw(0x84 + n);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  reduce(): this {
    return this.op('R');
  }
  persid(): this {
    return this.op('Q');
  }
  stop(): this {
    return this.op('.');
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** One tensor as the pickle describes it: a view into a storage. */
export interface PickledTensor {
  readonly storage: string;
  /** torch's storage class: FloatStorage, HalfStorage, BFloat16Storage, DoubleStorage, ... */
  readonly storageType: string;
  /** The element count the persistent id claims. */
  readonly numel: number;
  readonly offset?: number;
  readonly shape: readonly number[];
  /** Default: row-major. */
  readonly stride?: readonly number[];
}

const rowMajor = (shape: readonly number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

/** The tensor's pickle: _rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict()). */
export function pickleTensor(p: Pickler, t: PickledTensor): Pickler {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.storageType).str(t.storage).str('cpu').int(t.numel).tuple().persid();
  p.int(t.offset ?? 0);
  const tup = (xs: readonly number[]) => {
    p.mark();
    xs.forEach((x) => p.int(x));
    p.tuple();
  };
  tup(t.shape);
  tup(t.stride ?? rowMajor(t.shape));
  p.bool(false).global('collections', 'OrderedDict').tuple(0).reduce();
  return p.tuple().reduce();
}

/** A state dict's pickle: an OrderedDict (or a plain dict, as a dict comprehension saves) of tensors. */
export function pickleStateDict(tensors: readonly (readonly [string, PickledTensor])[], opts: { plainDict?: boolean } = {}): Buffer {
  const p = new Pickler().proto(2);
  if (opts.plainDict) p.op('}');
  else p.global('collections', 'OrderedDict').tuple(0).reduce();
  p.mark();
  for (const [name, t] of tensors) pickleTensor(p.str(name), t);
  return p.op('u').stop().bytes();
}

/**
 * A zip of stored entries laid out as torch's PyTorchStreamWriter lays them out. `zip64Only` saturates the
 * classic end record's fields, as writers do for archives beyond 4 GiB, so readers must follow the zip64 one.
 */
export function torchZip(files: readonly { readonly name: string; readonly data: Buffer }[], opts: { zip64Only?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const { name, data } of files) {
    const nameBuf = Buffer.from(name, 'utf8');
    // Torch pads each local header's extra field so that the data starts at a multiple of 64.
    const pad = (64 - ((offset + 30 + nameBuf.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(data.length, 20);
    c.writeUInt32LE(data.length, 24);
    c.writeUInt16LE(nameBuf.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, nameBuf);
    parts.push(local, nameBuf, extra, data);
    offset += 30 + nameBuf.length + extra.length + data.length;
  }
  const cd = Buffer.concat(central);
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(0x1e, 12);
  z64.writeUInt16LE(0x2d, 14);
  z64.writeBigUInt64LE(BigInt(files.length), 24);
  z64.writeBigUInt64LE(BigInt(files.length), 32);
  z64.writeBigUInt64LE(BigInt(cd.length), 40);
  z64.writeBigUInt64LE(BigInt(offset), 48);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(offset + cd.length), 8);
  loc.writeUInt32LE(1, 16);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(opts.zip64Only ? 0xffff : files.length, 8);
  eocd.writeUInt16LE(opts.zip64Only ? 0xffff : files.length, 10);
  eocd.writeUInt32LE(opts.zip64Only ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(opts.zip64Only ? 0xffffffff : offset, 16);
  return Buffer.concat([...parts, cd, z64, loc, eocd]);
}

export type SavedDtype = 'F32' | 'F16' | 'BF16' | 'F64';
const STORAGE_TYPE: Record<SavedDtype | 'BOOL', string> = { F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', F64: 'DoubleStorage', BOOL: 'BoolStorage' };

function storageBytes(data: Float32Array, dtype: SavedDtype | 'BOOL'): Buffer {
  const n = data.length;
  if (dtype === 'BOOL') return Buffer.from(Array.from(data, (v) => (v ? 1 : 0)));
  if (dtype === 'F32') return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (dtype === 'F64') {
    const b = Buffer.alloc(8 * n);
    data.forEach((v, i) => b.writeDoubleLE(v, 8 * i));
    return b;
  }
  // Half precision by truncation of the float32 bits (BF16) or through a float16 rounding (F16).
  const b = Buffer.alloc(2 * n);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  data.forEach((v, i) => {
    f[0] = v;
    if (dtype === 'BF16') b.writeUInt16LE(u[0]! >>> 16, 2 * i);
    else {
      const sign = (u[0]! >>> 16) & 0x8000;
      const a = Math.abs(v);
      if (a < 2 ** -14) b.writeUInt16LE(sign | Math.round(a * 2 ** 24), 2 * i);
      else {
        // Rounding the mantissa up to 1024 carries into the exponent, which the addition does by itself.
        const e = Math.floor(Math.log2(a));
        b.writeUInt16LE(sign | (((e + 15) << 10) + Math.round((a / 2 ** e - 1) * 1024)), 2 * i);
      }
    }
  });
  return b;
}

/**
 * torch.save(state_dict, path) for contiguous tensors, one storage each, keys '0', '1', ... in order, as
 * torch writes them; `root` is the archive's folder (torch names it after the file). `bool` names the
 * tensors stored as torch.bool (masks), whatever `dtype` the others have.
 */
export function torchSave(path: string, tensors: Record<string, Tensor32>, opts: { dtype?: SavedDtype; root?: string; bool?: (name: string) => boolean } = {}): void {
  const root = opts.root ?? 'archive';
  const names = Object.keys(tensors);
  const dtype = (n: string) => (opts.bool?.(n) ? 'BOOL' : (opts.dtype ?? 'F32'));
  const pkl = pickleStateDict(names.map((n, i) => [n, { storage: String(i), storageType: STORAGE_TYPE[dtype(n)], numel: tensors[n]!.data.length, shape: tensors[n]!.shape }]));
  const files = [{ name: `${root}/data.pkl`, data: pkl }];
  names.forEach((n, i) => files.push({ name: `${root}/data/${i}`, data: storageBytes(tensors[n]!.data, dtype(n)) }));
  files.push({ name: `${root}/version`, data: Buffer.from('3\n') }, { name: `${root}/byteorder`, data: Buffer.from('little') });
  writeFileSync(path, torchZip(files));
}
