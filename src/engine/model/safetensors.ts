import { closeSync, readSync, writeSync } from 'node:fs';
import { numel, type Tensor32 } from '../tensor';
import { openRegularFile } from '../../common/fileRead';
import { replaceFileWith } from '../../common/fileWrite';
import { jsonErrorReason, UserError } from '../../common/userError';
import { WEIGHTS_FILE } from './modelFiles';

// Format: u64 LE header length N, N bytes of JSON header, then the data section. Offsets in the header
// are relative to the start of the data section. https://github.com/huggingface/safetensors

const DTYPE_BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const KNOWN_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64', 'BOOL']);

// A header larger than this is a corrupt file, not a real model (HF's own limit is 100 MB).
const MAX_HEADER_BYTES = 100_000_000;

interface HeaderEntry {
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function fail(path: string, what: string): never {
  throw new UserError(`${path} is not a valid safetensors file: ${what}; re-export or re-download it`);
}

/** Validates the header. `prefix` holds at least the first 8 + header-length bytes of the file. */
function parseHeader(
  path: string,
  fileSize: number,
  readPrefix: (n: number) => Buffer,
  skip?: (name: string) => boolean,
): { entries: Map<string, HeaderEntry>; dataStart: number } {
  if (fileSize < 8) fail(path, `the file has ${fileSize} bytes, fewer than the 8-byte header length`);
  const headerLen = readPrefix(8).readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8)) {
    fail(path, `its header claims ${headerLen} bytes but the file has only ${fileSize - 8} bytes after the length field (truncated?)`);
  }
  const n = Number(headerLen);
  if (n > MAX_HEADER_BYTES) fail(path, `its header of ${n} bytes exceeds ${MAX_HEADER_BYTES}`);
  const buf = readPrefix(8 + n);
  let json: unknown;
  try {
    json = JSON.parse(buf.toString('utf8', 8, 8 + n));
  } catch (e) {
    fail(path, `its header is not JSON (${jsonErrorReason(e)})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(path, 'its header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = fileSize - dataStart;
  const entries = new Map<string, HeaderEntry>();
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__' || skip?.(name)) continue;
    if (typeof raw !== 'object' || raw === null) fail(path, `entry '${name}' is not an object`);
    const e = raw as Record<string, unknown>;
    const { dtype, shape, data_offsets: offs } = e;
    if (typeof dtype !== 'string') fail(path, `tensor '${name}' has no string dtype`);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      fail(path, `tensor '${name}' has no valid shape (a list of non-negative integers)`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      fail(path, `tensor '${name}' has no valid data_offsets [begin, end]`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end || end > dataLen) {
      fail(path, `tensor '${name}' has data_offsets [${begin}, ${end}] outside the ${dataLen}-byte data section (truncated?)`);
    }
    const size = DTYPE_BYTES[dtype];
    if (size === undefined) {
      const known = KNOWN_DTYPES.has(dtype) ? 'unsupported' : 'unknown';
      throw new UserError(`tensor '${name}' in ${path} has ${known} dtype '${dtype}'; PatchLens reads F32, F16, BF16 and F64 weights — convert the checkpoint to one of those`);
    }
    const count = numel(shape as number[]);
    if (end - begin !== count * size) {
      fail(path, `tensor '${name}' (${dtype} [${(shape as number[]).join(', ')}]) needs ${count * size} bytes but its data_offsets span ${end - begin}`);
    }
    entries.set(name, { dtype, shape: shape as number[], begin, end });
  }
  return { entries, dataStart };
}

// Lookup tables rather than bit tricks per value: a 64K-entry table converts GPT-2-sized F16 tensors fast.
let f16Table: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) t[h] = sign * frac * 2 ** -24;
    else if (exp === 31) t[h] = frac ? NaN : sign * Infinity;
    else t[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return (f16Table = t);
}

/** Converts `count` values of `dtype` (F32, F16, BF16, F64) at `buf[at...]` to float32; F32 may return a view of `buf`. */
export function toFloat32(buf: Buffer, at: number, count: number, dtype: string): Float32Array {
  if (dtype === 'F32') {
    const off = buf.byteOffset + at;
    // Zero-copy when aligned: GPT-2 small is 500 MB, a second copy would double peak memory.
    if (off % 4 === 0) return new Float32Array(buf.buffer, off, count);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = buf.readFloatLE(at + 4 * i);
    return out;
  }
  const out = new Float32Array(count);
  if (dtype === 'F16' || dtype === 'BF16') {
    // A typed view reads the halves several times faster than Buffer.readUInt16LE (1B parameters of
    // BF16 in seconds, not half a minute); an odd offset, which no writer produces, is copied first.
    const off = buf.byteOffset + at;
    const halves = off % 2 === 0 ? new Uint16Array(buf.buffer, off, count) : new Uint16Array(Uint8Array.prototype.slice.call(buf, at, at + 2 * count).buffer);
    if (dtype === 'F16') {
      const t = halfToFloatTable();
      for (let i = 0; i < count; i++) out[i] = t[halves[i]!]!;
    } else {
      // BF16 is the high half of a float32, so widening is exact.
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) u[i] = halves[i]! << 16;
    }
  } else {
    for (let i = 0; i < count; i++) out[i] = buf.readDoubleLE(at + 8 * i);
  }
  return out;
}

// readFileSync stops at 2 GiB and one Buffer at 4 GiB (Node 20); gpt2-large/xl are bigger. Above this
// size each tensor is read into its own memory instead, which is still one copy of the weights.
const WHOLE_FILE_LIMIT = 1 << 30;

export function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    // Bounded chunks: a single readSync call can't move more than 2 GiB.
    const n = readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (n === 0) throw new Error('unexpected end of file');
    done += n;
  }
}

function openForRead(path: string): { fd: number; fileSize: number } {
  const { fd, size } = openRegularFile(path, WEIGHTS_FILE);
  return { fd, fileSize: size };
}

function readHeader(fd: number, fileSize: number, path: string, skip?: (name: string) => boolean): { entries: Map<string, HeaderEntry>; dataStart: number } {
  const readPrefix = (n: number): Buffer => {
    const b = Buffer.alloc(n);
    readFully(fd, b, 0);
    return b;
  };
  return parseHeader(path, fileSize, readPrefix, skip);
}

export type TensorHeader = ReadonlyMap<string, { readonly dtype: string; readonly shape: readonly number[] }>;

/** Every tensor's name, dtype and shape, checked, without reading any data (sharded checkpoints check all shards first). */
export function readSafetensorsHeader(path: string): TensorHeader {
  const { fd, fileSize } = openForRead(path);
  try {
    return readHeader(fd, fileSize, path).entries;
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads the tensors of a .safetensors file as float32. F32 data aliases the file buffer when aligned
 * (files up to 1 GiB; larger ones get one buffer per tensor). `opts.skip` names tensors not to read
 * (their dtype is then not checked either), such as buffers a loader has no use for.
 */
export function readSafetensors(
  path: string,
  opts: {
    skip?: (name: string) => boolean;
    wholeFileLimit?: number;
    /** Sees every tensor's dtype and shape before any data is read; throws to refuse the file. */
    checkHeader?: (entries: TensorHeader) => void;
  } = {},
): Map<string, Tensor32> {
  const { fd, fileSize } = openForRead(path);
  try {
    // The header is read and checked on its own first: a truncated or lying file is refused before
    // its data costs any memory.
    const { entries, dataStart } = readHeader(fd, fileSize, path, opts.skip);
    opts.checkHeader?.(entries);
    // Only the tensors wanted are read: a whole-file buffer pays off when most of the file is wanted.
    const wanted = [...entries.values()].reduce((a, e) => a + e.end - e.begin, 0);
    const whole = fileSize <= (opts.wholeFileLimit ?? WHOLE_FILE_LIMIT) && wanted * 2 >= fileSize - dataStart;
    let file: Buffer | undefined;
    if (whole) {
      file = Buffer.allocUnsafeSlow(fileSize);
      readFully(fd, file, 0);
    }
    const out = new Map<string, Tensor32>();
    for (const [name, e] of entries) {
      const count = numel(e.shape);
      let data: Float32Array;
      if (whole) data = toFloat32(file!, dataStart + e.begin, count, e.dtype);
      else {
        // Allocating the tensor's own storage and reading straight into it avoids a copy.
        const own = Buffer.allocUnsafeSlow(e.end - e.begin);
        readFully(fd, own, dataStart + e.begin);
        data = toFloat32(own, 0, count, e.dtype);
      }
      out.set(name, { shape: [...e.shape], data });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Dtypes a checkpoint may be written in; half-precision values are rounded to the nearest (BF16: ties to even). */
export type StoredDtype = 'F32' | 'F16' | 'BF16';

const scratch = new DataView(new ArrayBuffer(4));

function toBf16(v: number): number {
  scratch.setFloat32(0, v, true);
  const bits = scratch.getUint32(0, true);
  if (Number.isNaN(v)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

function toF16(v: number): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | Math.round(a * 2 ** 24); // subnormal
  let exp = Math.floor(Math.log2(a));
  let frac = Math.round((a / 2 ** exp - 1) * 1024);
  if (frac === 1024) {
    frac = 0;
    exp++;
  }
  return sign | ((exp + 15) << 10) | frac;
}

function encode(d: Float32Array, dtype: StoredDtype): Buffer {
  // Float32Array is little-endian on every platform Node supports.
  if (dtype === 'F32') return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  const out = Buffer.allocUnsafe(2 * d.length);
  const conv = dtype === 'BF16' ? toBf16 : toF16;
  for (let i = 0; i < d.length; i++) out.writeUInt16LE(conv(d[i]!), 2 * i);
  return out;
}

/** A tensor to write without holding it whole: its shape, and its data encoded in the file's dtype, chunk by chunk. */
export interface TensorSource {
  readonly shape: readonly number[];
  /** Calls `put` with the tensor's bytes in order; their total must be the shape's element count times the dtype's size. */
  readonly write: (put: (bytes: Buffer) => void) => void;
}

/**
 * Writes tensors (sorted by name, as the HF library does) atomically: temp file, then rename. `dtype`
 * stores them in half precision, as many hub checkpoints are.
 */
export function writeSafetensors(path: string, tensors: Record<string, Tensor32>, metadata?: Record<string, string>, dtype: StoredDtype = 'F32'): void {
  const sources: Record<string, TensorSource> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const n = numel(t.shape);
    if (t.data.length !== n) throw new Error(`tensor '${name}' has ${t.data.length} values, shape [${t.shape}] needs ${n}`);
    sources[name] = { shape: t.shape, write: (put) => put(encode(t.data, dtype)) };
  }
  writeSafetensorsFrom(path, sources, metadata, dtype);
}

/**
 * writeSafetensors for tensors produced piece by piece: a checkpoint larger than memory (a 1B-parameter
 * test model) is written with one chunk in memory at a time.
 */
export function writeSafetensorsFrom(path: string, tensors: Record<string, TensorSource>, metadata?: Record<string, string>, dtype: StoredDtype = 'F32'): void {
  const bytesPer = dtype === 'F32' ? 4 : 2;
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const n = numel(tensors[name]!.shape);
    header[name] = { dtype, shape: [...tensors[name]!.shape], data_offsets: [offset, offset + bytesPer * n] };
    offset += bytesPer * n;
  }
  let json = JSON.stringify(header);
  // Padding keeps the data section 8-byte aligned so readers can view F32/F64 data without copying.
  const pad = (8 - ((Buffer.byteLength(json) + 8) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBuf = Buffer.from(json, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBuf.length));

  replaceFileWith(path, (fd) => {
    writeSync(fd, len);
    writeSync(fd, headerBuf);
    for (const name of names) {
      const want = bytesPer * numel(tensors[name]!.shape);
      let written = 0;
      tensors[name]!.write((bytes) => {
        let done = 0;
        while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
        written += bytes.length;
      });
      if (written !== want) throw new Error(`tensor '${name}' wrote ${written} bytes, its shape and dtype need ${want}`);
    }
  });
}
