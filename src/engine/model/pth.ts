import { closeSync, fstatSync, readSync } from 'node:fs';
import { numel, type Tensor32 } from '../tensor';
import { openRegularFile } from '../../common/fileRead';
import { oneLine, UserError } from '../../common/userError';
import { WEIGHTS_FILE } from './modelFiles';
import { isGlobal, PickleDict, type PickleGlobal, unpickle } from './pickle';
import { readFully, toFloat32, type TensorHeader } from './safetensors';
import { readZipDirectory, type ZipEntry } from './storedZip';

/**
 * PyTorch state dicts (.pth) in torch.save's zip format (torch 1.6 and later): `<name>/data.pkl` is a pickle
 * of the dict whose tensors refer to their storages by key, `<name>/data/<key>` holds each storage's raw
 * little-endian bytes. The pickle is read by a restricted reader (pickle.ts) that accepts dicts, OrderedDict,
 * torch's tensor-rebuilding functions and storage types only: nothing in the file is ever run. Every size,
 * offset and stride it claims is checked against the storage it points into before any data is read.
 */

/** A PyTorch state dict (.pth): every tensor's dtype and shape first, then the data of the ones wanted. */
export interface PthStateDict {
  readonly header: TensorHeader;
  read(keep: (name: string) => boolean): Map<string, Tensor32>;
}

/** torch's storage types, by the name the pickle imports, as safetensors dtypes. */
const STORAGES: Record<string, { dtype: string; bytes: number }> = {
  DoubleStorage: { dtype: 'F64', bytes: 8 },
  FloatStorage: { dtype: 'F32', bytes: 4 },
  HalfStorage: { dtype: 'F16', bytes: 2 },
  BFloat16Storage: { dtype: 'BF16', bytes: 2 },
  LongStorage: { dtype: 'I64', bytes: 8 },
  IntStorage: { dtype: 'I32', bytes: 4 },
  ShortStorage: { dtype: 'I16', bytes: 2 },
  CharStorage: { dtype: 'I8', bytes: 1 },
  ByteStorage: { dtype: 'U8', bytes: 1 },
  BoolStorage: { dtype: 'BOOL', bytes: 1 },
};
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

// A state dict's pickle is a few bytes per tensor; more than this is not a state dict.
const MAX_PICKLE_BYTES = 100_000_000;

interface Storage {
  readonly key: string;
  readonly dtype: string;
  readonly bytes: number;
  readonly numel: number;
  readonly entry: ZipEntry;
}

class TensorRef {
  constructor(
    readonly storage: Storage,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** What went wrong, made one line and short: names in it come from the file and may hold anything. */
const brief = (what: string): string => {
  const s = oneLine(what);
  return s.length > 400 ? `${s.slice(0, 400)}…` : s;
};

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function openPth(path: string): number {
  return openRegularFile(path, WEIGHTS_FILE).fd;
}

function readEntry(fd: number, entry: ZipEntry): Buffer {
  const buf = Buffer.alloc(entry.size);
  readFully(fd, buf, entry.dataOffset);
  return buf;
}

/** The pickle's tensors, each with its storage checked against the archive. */
function readTensorRefs(fd: number, path: string): Map<string, TensorRef> {
  const size = fstatSync(fd).size;
  const damaged = (what: string): never => {
    throw new UserError(`${path} is not a readable torch.save file: ${brief(what)}; re-download it, or save it again with torch.save`);
  };
  const magic = Buffer.alloc(4);
  if (readSync(fd, magic, 0, 4, 0) < 4) damaged(`it has only ${size} bytes`);
  if (magic[0] === 0x80 && magic[1] === 0x02) {
    throw new UserError(`${path} is in PyTorch's legacy (before 1.6) format, which PatchLens does not read; load it in Python and save it again with a current torch.save`);
  }
  if (magic.readUInt32LE(0) !== 0x04034b50) damaged('it does not start like a zip archive');
  const entries = readZipDirectory(fd, size, damaged);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) damaged(`it has ${pkls.length === 0 ? 'no' : 'several'} <name>/data.pkl entries`);
  const root = pkls[0]!.slice(0, -'data.pkl'.length);
  const pkl = entries.get(pkls[0]!)!;
  if (pkl.method !== 0) damaged('its data.pkl is compressed');
  if (pkl.size > MAX_PICKLE_BYTES) damaged(`its data.pkl has ${pkl.size} bytes, more than any state dict needs`);
  const order = entries.get(`${root}byteorder`);
  if (order && order.size <= 16 && readEntry(fd, order).toString('latin1') !== 'little') {
    throw new UserError(`${path} was saved on a big-endian machine, which PatchLens does not read; save it again on a little-endian one`);
  }

  const refuse = (what: string): never => {
    throw new UserError(
      `${path} holds a pickle PatchLens will not read: ${brief(what)}; a .pth may hold only tensors in dicts (torch.save(model.state_dict(), ...)), and PatchLens never runs code from a model file`,
    );
  };
  const storages = new Map<string, Storage>();
  const persistentLoad = (pid: unknown): Storage => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') refuse('a persistent id that is not a torch storage');
    const [, type, key, , count] = pid as unknown[];
    const kind = isGlobal(type) && type.module === 'torch' ? STORAGES[type.name] : undefined;
    if (!kind) refuse('a storage of an unknown type');
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key)) refuse('a storage key that is not a plain name');
    if (!isCount(count)) refuse(`storage '${key}' has no valid element count`);
    const k = key as string;
    const seen = storages.get(k);
    if (seen) {
      if (seen.dtype !== kind!.dtype || seen.numel !== count) refuse(`storage '${k}' is described twice, differently`);
      return seen;
    }
    const entry = entries.get(`${root}data/${k}`);
    if (!entry) damaged(`storage '${k}' has no ${root}data/${k} entry`);
    if (entry!.method !== 0) damaged(`storage '${k}' is compressed, which torch.save never does`);
    const bytes = (count as number) * kind!.bytes;
    if (entry!.size !== bytes) {
      damaged(`storage '${k}' claims ${count} ${kind!.dtype} values (${bytes} bytes) but its entry holds ${entry!.size} bytes`);
    }
    const s: Storage = { key: k, dtype: kind!.dtype, bytes: kind!.bytes, numel: count as number, entry: entry! };
    storages.set(k, s);
    return s;
  };

  const rebuild = (args: readonly unknown[]): TensorRef => {
    const [storage, offset, shape, stride] = args;
    if (!storages.has((storage as Storage)?.key) || storages.get((storage as Storage).key) !== storage) refuse('a tensor rebuilt from something that is not a storage');
    if (!isCount(offset)) refuse('a tensor with an invalid storage offset');
    const dims = (v: unknown) => Array.isArray(v) && v.every(isCount);
    if (!dims(shape) || !dims(stride) || (shape as number[]).length !== (stride as number[]).length) {
      refuse('a tensor whose size and stride are not equally long lists of non-negative integers');
    }
    return new TensorRef(storage as Storage, offset as number, shape as number[], stride as number[]);
  };
  const passThrough = (args: readonly unknown[]) => args[0];
  const ALLOWED: Record<string, Omit<PickleGlobal, 'module' | 'name'>> = {
    'collections.OrderedDict': {
      call: (args) => {
        if (args.length !== 0) refuse('an OrderedDict built from arguments');
        return new PickleDict();
      },
    },
    // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata]); hooks and metadata are ignored.
    'torch._utils._rebuild_tensor_v2': { call: (args) => (args.length >= 6 && args.length <= 7 ? rebuild(args) : refuse('_rebuild_tensor_v2 with the wrong arguments')) },
    'torch._utils._rebuild_tensor': { call: (args) => (args.length === 4 ? rebuild(args) : refuse('_rebuild_tensor with the wrong arguments')) },
    // nn.Parameter around a tensor: the tensor is what counts.
    'torch._utils._rebuild_parameter': { call: passThrough },
    'torch._utils._rebuild_parameter_with_state': { call: passThrough },
    ...Object.fromEntries(Object.keys(STORAGES).map((n) => [`torch.${n}`, {}])),
  };

  const data = readEntry(fd, pkl);
  const top = unpickle(data, {
    global: (module, name) => {
      const a = ALLOWED[`${module}.${name}`];
      return a ? { module, name, ...a } : undefined;
    },
    persistentLoad,
    fail: refuse,
  });
  if (!(top instanceof PickleDict)) refuse('the pickle holds something other than a dict of tensors');
  const out = new Map<string, TensorRef>();
  for (const [name, value] of (top as PickleDict).entries) {
    // Other entries (a module's _extra_state, plain numbers) are not weights.
    if (typeof name !== 'string' || !(value instanceof TensorRef)) continue;
    const t = value;
    const n = numel(t.shape);
    // The highest element the view reaches must lie inside its storage.
    const last = t.offset + t.shape.reduce((a, d, i) => a + (d - 1) * t.stride[i]!, 0);
    if (n > 0 ? last >= t.storage.numel : t.offset > t.storage.numel) {
      damaged(
        `tensor '${name}' ([${t.shape.join(', ')}], stride [${t.stride.join(', ')}], offset ${t.offset}) reaches element ${last} of storage '${t.storage.key}', which has ${t.storage.numel}`,
      );
    }
    out.set(name, t);
  }
  if (out.size === 0) refuse('the dict holds no tensors');
  return out;
}

/** The tensor's elements in row-major order, read from the bytes its view spans. */
function readTensor(fd: number, path: string, name: string, t: TensorRef): Tensor32 {
  const { storage: s, shape, stride } = t;
  if (!FLOAT_DTYPES.has(s.dtype)) {
    throw new UserError(`tensor '${brief(name)}' in ${path} has dtype ${s.dtype}; PatchLens reads F32, F16, BF16 and F64 weights`);
  }
  const n = numel(shape);
  if (n === 0) return { shape: [...shape], data: new Float32Array(0) };
  const span = shape.reduce((a, d, i) => a + (d - 1) * stride[i]!, 0) + 1;
  const buf = Buffer.allocUnsafeSlow(span * s.bytes);
  readFully(fd, buf, s.entry.dataOffset + t.offset * s.bytes);
  const values = toFloat32(buf, 0, span, s.dtype);
  let contiguous = true;
  for (let i = shape.length - 1, acc = 1; i >= 0; acc *= shape[i]!, i--) if (shape[i]! > 1 && stride[i] !== acc) contiguous = false;
  if (contiguous) return { shape: [...shape], data: values };
  // A view (a transpose, a slice): walk its indices, last axis fastest.
  const data = new Float32Array(n);
  const idx = new Array<number>(shape.length).fill(0);
  let at = 0;
  for (let i = 0; i < n; i++) {
    data[i] = values[at]!;
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++idx[k]! < shape[k]!) {
        at += stride[k]!;
        break;
      }
      at -= (shape[k]! - 1) * stride[k]!;
      idx[k] = 0;
    }
  }
  return { shape: [...shape], data };
}

export function readPthStateDict(path: string): PthStateDict {
  const fd = openPth(path);
  let refs: Map<string, TensorRef>;
  try {
    refs = readTensorRefs(fd, path);
  } finally {
    closeSync(fd);
  }
  const header = new Map([...refs].map(([name, t]) => [name, { dtype: t.storage.dtype, shape: [...t.shape] }]));
  return {
    header,
    read(keep) {
      const out = new Map<string, Tensor32>();
      const fd2 = openPth(path);
      try {
        for (const [name, t] of refs) if (keep(name)) out.set(name, readTensor(fd2, path, name, t));
      } finally {
        closeSync(fd2);
      }
      return out;
    },
  };
}
