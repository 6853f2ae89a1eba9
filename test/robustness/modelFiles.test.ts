/**
 * Broken and hostile model files: truncated or lying safetensors, wrong dtypes, weights that do not
 * match config.json, absurd configs, models larger than the memory there is. Each must be one clear
 * UserError, raised before anything large is allocated (peak RSS is measured around the cases that
 * would allocate gigabytes if the checks came too late).
 *
 * The memory tests come first: peak RSS is a high-water mark, so they run while it is still low.
 */
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { totalmem } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseModelConfig } from '../../src/engine/architectures/registry';
import { formatBytes } from '../../src/engine/model/config';
import { modelParamCount } from '../../src/engine/model/weights';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { readSafetensors } from '../../src/engine/model/safetensors';
import { makeTmpDir, type RandomGpt2Options, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { attempt, Failures, Rng, userErrorProblem } from './fuzz';

const MB = 2 ** 20;

/** Peak and current RSS growth while `f` runs (peak from getrusage, so a short-lived buffer counts). */
function memoryGrowth(f: () => void): number {
  const rss0 = process.memoryUsage().rss;
  const peak0 = process.resourceUsage().maxRSS * 1024;
  f();
  const rss1 = process.memoryUsage().rss;
  const peak1 = process.resourceUsage().maxRSS * 1024;
  return Math.max(rss1 - rss0, peak1 - Math.max(peak0, rss0));
}

/** Runs `f`, which must throw a clean UserError mentioning every part; returns the message. */
function userError(f: () => unknown, ...parts: (string | RegExp)[]): string {
  const r = attempt(f);
  assert.ok(!r.ok, `expected a UserError, but it succeeded (${parts.join(', ')})`);
  const problem = userErrorProblem(r.error);
  assert.equal(problem, undefined, problem);
  const msg = (r.error as Error).message;
  for (const p of parts) {
    if (typeof p === 'string') assert.ok(msg.includes(p), `message '${msg}' should mention '${p}'`);
    else assert.match(msg, p);
  }
  return msg;
}

/** The bytes of a safetensors file whose header says whatever the test wants. */
function headerBytes(header: unknown, pad = true): Buffer {
  let json = JSON.stringify(header);
  if (pad) json += ' '.repeat((8 - ((json.length + 8) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json)]);
}

/** A file of `size` bytes that starts with `head` and is sparse after it: gigabytes cost no disk. */
function sparseFile(path: string, head: Buffer, size: number): void {
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, head);
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

const TINY: RandomGpt2Options = { nLayers: 1, nHeads: 2, dModel: 8, dMlp: 16, dVocab: 50, nCtx: 8, seed: 11 };
const SMALL: RandomGpt2Options = { nLayers: 2, nHeads: 4, dModel: 64, dVocab: 1500, nCtx: 32, seed: 12 };

function checkpoint(prefix: string, o: RandomGpt2Options): { dir: string; st: string; config: string; bytes: Buffer } {
  const dir = makeTmpDir(prefix);
  writeRandomGpt2Checkpoint(dir, o);
  const st = join(dir, 'model.safetensors');
  return { dir, st, config: join(dir, 'config.json'), bytes: readFileSync(st) };
}

/**
 * Replaces a file's content. Removing it first matters for speed: ext4 flushes a file to disk when
 * it is truncated and rewritten in place, which made thousands of cases take seconds.
 */
function put(path: string, data: string | Buffer): void {
  rmSync(path, { force: true });
  writeFileSync(path, data);
}

function editConfig(path: string, edit: (c: Record<string, unknown>) => void): void {
  const c = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(c);
  put(path, JSON.stringify(c));
}

// ---------------------------------------------------------------------------------------------
// Memory: rejected before the allocation

test('a config.json claiming 10^12 parameters is rejected by the config alone: no weights read, RSS flat', () => {
  const ck = checkpoint('mem-absurd', SMALL);
  // Weights that would take 6 GiB to read, if anything tried (sparse: no disk used).
  sparseFile(ck.st, headerBytes({ 'wte.weight': { dtype: 'F32', shape: [1_610_612_736], data_offsets: [0, 6 * 2 ** 30] } }), 6 * 2 ** 30 + 4096);
  const absurd: [string, (c: Record<string, unknown>) => void, string[]][] = [
    [
      '10^12 parameters, each field in bounds',
      (c) => Object.assign(c, { n_embd: 65536, n_head: 64, n_layer: 20, n_inner: null, vocab_size: 50257 }),
      ['GiB', 'd_model 65536', 'n_layers 20'],
    ],
    ['d_model 10^9', (c) => (c.n_embd = 1e9), ["'n_embd'", '1000000000']],
    ['n_layer 10^6', (c) => (c.n_layer = 1e6), ["'n_layer'", '1000000']],
    ['vocab 10^12', (c) => (c.vocab_size = 1e12), ["'vocab_size'", '1000000000000']],
    ['n_positions 10^12', (c) => ((c.n_positions = 1e12), (c.n_ctx = 1e12)), ["'n_positions'"]],
    ['n_inner 10^9', (c) => (c.n_inner = 1e9), ["'n_inner'"]],
    ['n_head 10^9', (c) => (c.n_head = 1e9), ["'n_head'"]],
  ];
  const fresh = readFileSync(ck.config, 'utf8');
  const grown = memoryGrowth(() => {
    for (const [, edit, parts] of absurd) {
      put(ck.config, fresh);
      editConfig(ck.config, edit);
      userError(() => loadCheckpoint(ck.dir), ck.config, ...parts);
    }
  });
  // Sparse gigabytes would be real ones to a copy tool that does not know about holes.
  rmSync(ck.st);
  assert.ok(grown < 200 * MB, `RSS grew by ${(grown / MB).toFixed(0)} MB while rejecting absurd configs`);
});

test('a truncated 900 MB safetensors file is rejected from its header, before the file is read into memory', () => {
  const ck = checkpoint('mem-truncated', TINY);
  // The header promises 1 GiB of data; the file stops at 900 MB (the rest never arrived).
  const head = headerBytes({ 'wte.weight': { dtype: 'F32', shape: [268_435_456], data_offsets: [0, 2 ** 30] } });
  sparseFile(ck.st, head, 900 * MB);
  const grown = memoryGrowth(() => userError(() => loadCheckpoint(ck.dir), ck.st, 'truncated'));
  rmSync(ck.st);
  assert.ok(grown < 200 * MB, `RSS grew by ${(grown / MB).toFixed(0)} MB while rejecting a truncated file`);
});

test('tensors larger than config.json describes are rejected before they are read', () => {
  const ck = checkpoint('mem-oversize', TINY);
  const cases: [string, Record<string, unknown>, number][] = [
    // A weight the config says is [8] claims 1.5 GiB (the file really is that big).
    ['ln_1 of 1.5 GiB', { 'h.0.ln_1.weight': { dtype: 'F32', shape: [402_653_184], data_offsets: [0, 1.5 * 2 ** 30] } }, 1.5 * 2 ** 30],
    // An F16 tensor whose float32 copy would be 3 GiB.
    ['wte as 1.5 GiB of F16', { 'wte.weight': { dtype: 'F16', shape: [805_306_368], data_offsets: [0, 1.5 * 2 ** 30] } }, 1.5 * 2 ** 30],
    // A tensor PatchLens has no use for: it must not be read either.
    ['an unused 1.5 GiB tensor', { 'v_head.summary.weight': { dtype: 'F32', shape: [402_653_184], data_offsets: [0, 1.5 * 2 ** 30] } }, 1.5 * 2 ** 30],
  ];
  for (const [what, header, dataBytes] of cases) {
    const head = headerBytes(header);
    sparseFile(ck.st, head, head.length + dataBytes);
    const grown = memoryGrowth(() => {
      const r = attempt(() => loadCheckpoint(ck.dir));
      assert.ok(!r.ok, `${what}: loaded`);
      assert.equal(userErrorProblem(r.error), undefined, `${what}: ${userErrorProblem(r.error)}`);
    });
    rmSync(ck.st);
    assert.ok(grown < 200 * MB, `${what}: RSS grew by ${(grown / MB).toFixed(0)} MB before the error`);
  }
});

test('a model larger than the memory limit: an error naming its size and the limit, before the weights are read', (t) => {
  const ck = checkpoint('mem-limit', SMALL);
  const need = modelParamCount({ ...parseModelConfig(JSON.parse(readFileSync(ck.config, 'utf8')), ck.config).config, weightsDtype: 'F32' }) * 4;
  // Garbage weights: if the loader read them first, the error would be about the file instead.
  put(ck.st, 'not a safetensors file at all');
  const saved = process.env.PATCHLENS_MAX_MODEL_BYTES;
  try {
    process.env.PATCHLENS_MAX_MODEL_BYTES = '100000';
    const msg = userError(() => loadCheckpoint(ck.dir), 'PATCHLENS_MAX_MODEL_BYTES');
    assert.ok(msg.includes(formatBytes(need)) && msg.includes('97.7 KiB'), msg);
    t.diagnostic(msg);
    for (const bad of ['abc', '-5', '0', 'Infinity']) {
      process.env.PATCHLENS_MAX_MODEL_BYTES = bad;
      userError(() => loadCheckpoint(ck.dir), 'PATCHLENS_MAX_MODEL_BYTES', bad);
    }
    // Under a limit it fits: the same checkpoint loads.
    writeRandomGpt2Checkpoint(ck.dir, SMALL);
    process.env.PATCHLENS_MAX_MODEL_BYTES = String(need + 1);
    assert.equal(loadCheckpoint(ck.dir).config.dModel, 64);
  } finally {
    if (saved === undefined) delete process.env.PATCHLENS_MAX_MODEL_BYTES;
    else process.env.PATCHLENS_MAX_MODEL_BYTES = saved;
  }
  // Without the variable, the limit is the machine's memory: a config within the 64 GiB format bound
  // but beyond this machine is refused by name.
  const GiB = 2 ** 30;
  if (totalmem() < 60 * GiB) {
    editConfig(ck.config, (c) => Object.assign(c, { n_embd: 8192, n_head: 64, n_layer: 20, n_inner: null, vocab_size: 50257 }));
    const size = modelParamCount({ ...parseModelConfig(JSON.parse(readFileSync(ck.config, 'utf8')), ck.config).config, weightsDtype: 'F32' }) * 4;
    assert.ok(size > totalmem() && size < 64 * GiB);
    const msg = userError(() => loadCheckpoint(ck.dir), `${(size / GiB).toFixed(1)} GiB`, `${(totalmem() / GiB).toFixed(1)} GiB`);
    t.diagnostic(msg);
  } else t.diagnostic('skipped the default-limit case: this machine has 60 GiB of memory or more');
});

// ---------------------------------------------------------------------------------------------
// Truncation

test('safetensors truncated at every byte of its header and every 4 KB of its data', (t) => {
  const ck = checkpoint('trunc', SMALL);
  const headerEnd = 8 + Number(ck.bytes.readBigUInt64LE(0));
  const cuts = new Set<number>();
  for (let i = 0; i <= headerEnd + 16; i++) cuts.add(i);
  for (let i = headerEnd; i < ck.bytes.length; i += 4096) cuts.add(i);
  cuts.add(ck.bytes.length - 1);
  const f = new Failures();
  for (const cut of cuts) {
    f.cases++;
    put(ck.st, ck.bytes.subarray(0, cut));
    // Read both ways: all at once (files up to 1 GiB) and tensor by tensor (larger files).
    const loaders: [string, () => unknown][] = [
      ['loader', () => loadCheckpoint(ck.dir)],
      ['per tensor', () => readSafetensors(ck.st, { wholeFileLimit: 0 })],
    ];
    for (const [how, load] of loaders) {
      if (how === 'per tensor' && cut % 7 !== 0) continue;
      const r = attempt(load);
      if (r.ok) f.add(`${how}: a truncated file loaded`, `cut at ${cut}`);
      else {
        const p = userErrorProblem(r.error);
        const msg = (r.error as Error).message;
        if (p) f.add(`${how}: ${p}`, `cut at ${cut}`);
        else if (!msg.includes(ck.st)) f.add(`${how}: message does not name the file`, `cut at ${cut}: ${msg}`);
        else if (!/truncated|fewer than the 8-byte/.test(msg)) f.add(`${how}: message does not say the file is truncated`, `cut at ${cut}: ${msg}`);
      }
    }
  }
  t.diagnostic(`${cuts.size} truncation points of a ${ck.bytes.length}-byte file (header ${headerEnd} bytes)`);
  assert.equal(f.total, 0, f.report());
});

test('a header that claims more bytes than the file has', () => {
  const ck = checkpoint('claims', TINY);
  const size = ck.bytes.length;
  for (const claim of [BigInt(size - 8 + 1), BigInt(size), 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]) {
    const b = Buffer.from(ck.bytes);
    b.writeBigUInt64LE(claim, 0);
    put(ck.st, b);
    userError(() => loadCheckpoint(ck.dir), ck.st, String(claim), String(size - 8), 'truncated');
  }
  // Shorter than the real header: the JSON is cut, whatever it holds.
  for (const claim of [0n, 1n, 2n, 17n]) {
    const b = Buffer.from(ck.bytes);
    b.writeBigUInt64LE(claim, 0);
    put(ck.st, b);
    userError(() => loadCheckpoint(ck.dir), ck.st, 'not JSON');
  }
  // A multi-line header whose JSON breaks: the message stays one line.
  put(ck.st, Buffer.concat([headerBytes({ a: 1 }).subarray(0, 8), Buffer.from('{\n"a":\nx\n}   ')]));
  const b = readFileSync(ck.st);
  b.writeBigUInt64LE(BigInt(b.length - 8), 0);
  put(ck.st, b);
  userError(() => loadCheckpoint(ck.dir), ck.st, 'not JSON');
});

// ---------------------------------------------------------------------------------------------
// Header fuzzing, dtypes, shapes

const ODD_DTYPES: unknown[] = [
  'I64',
  'I32',
  'I16',
  'I8',
  'U8',
  'U16',
  'U32',
  'U64',
  'BOOL',
  'F8_E4M3',
  'F8_E5M2',
  'Q4_K',
  'f32',
  'F32 ',
  '',
  'float32',
  7,
  null,
  ['F32'],
  { dtype: 'F32' },
];
const ODD_SHAPES: unknown[] = [[], [-1], [1.5], ['8'], [2 ** 53], [1e9, 1e9], [2 ** 31, 2 ** 31, 4], [0], [0, 2 ** 52], null, 'x', 8, [null], [8, 8, 8, 8, 8, 8, 8, 8, 8, 8]];
const ODD_OFFSETS: unknown[] = [[0], [5, 3], [-1, 0], [0, 2 ** 60], [0.5, 1], null, [0, 0], [1, 1], ['0', '4'], [0, 4, 8], [2 ** 53, 2 ** 53 + 4], 'x', {}];

test('safetensors headers with random lies (dtype, shape, offsets, names, bytes) load correctly or fail cleanly', (t) => {
  const ck = checkpoint('header-fuzz', TINY);
  const headerLen = Number(ck.bytes.readBigUInt64LE(0));
  const header = JSON.parse(ck.bytes.toString('utf8', 8, 8 + headerLen)) as Record<string, Record<string, unknown>>;
  const data = ck.bytes.subarray(8 + headerLen);
  const names = Object.keys(header).filter((n) => n !== '__metadata__');
  const rng = new Rng(0x7e45);
  const f = new Failures();
  let loaded = 0;
  const N = 1500;
  for (let i = 0; i < N; i++) {
    f.cases++;
    let file: Buffer;
    let what: string;
    if (rng.chance(0.25)) {
      // Raw corruption of the header bytes.
      file = Buffer.from(ck.bytes);
      const edits = rng.int(1, 4);
      for (let k = 0; k < edits; k++) file[rng.int(0, 8 + headerLen)] = rng.int(0, 256);
      what = `byte flips #${i}`;
    } else {
      const h = JSON.parse(JSON.stringify(header)) as Record<string, unknown>;
      const edits: string[] = [];
      for (let k = rng.int(1, 3); k > 0; k--) {
        const name = rng.pick(names);
        const entry = h[name] as Record<string, unknown> | undefined;
        const r = rng.int(0, 7);
        if (r === 0 && entry) {
          entry.dtype = rng.pick(ODD_DTYPES);
          edits.push(`${name}.dtype=${JSON.stringify(entry.dtype)}`);
        } else if (r === 1 && entry) {
          entry.shape = rng.pick(ODD_SHAPES);
          edits.push(`${name}.shape=${JSON.stringify(entry.shape)}`);
        } else if (r === 2 && entry) {
          entry.data_offsets = rng.pick(ODD_OFFSETS);
          edits.push(`${name}.offsets=${JSON.stringify(entry.data_offsets)}`);
        } else if (r === 3) {
          delete h[name];
          edits.push(`delete ${name}`);
        } else if (r === 4) {
          h[`transformer.${name}`] = h[name];
          edits.push(`duplicate ${name} with prefix`);
        } else if (r === 5 && entry) {
          // The shape of another tensor with a consistent byte count: a swap that only the config exposes.
          const other = h[rng.pick(names)] as Record<string, unknown> | undefined;
          if (other) {
            entry.shape = other.shape;
            entry.data_offsets = other.data_offsets;
            edits.push(`${name} takes the place of another`);
          }
        } else {
          h[rng.pick(['__metadata__', 'lm_head.weight', 'junk', ''])] = rng.pick([null, 1, 'x', { dtype: 'F32', shape: [1], data_offsets: [0, 4] }]);
          edits.push('extra entry');
        }
      }
      file = Buffer.concat([headerBytes(h), data]);
      what = edits.join(', ');
    }
    put(ck.st, file);
    const r = attempt(() => loadCheckpoint(ck.dir));
    if (r.ok) {
      loaded++;
      // Accepted: every weight has its config shape and as many values (what the graphs assume).
      const { weights, config } = r.value;
      if (weights.wte.data.length !== config.dVocab * config.dModel || weights.blocks.length !== config.nLayers) f.add('loaded weights that do not match the config', what);
      for (const b of weights.blocks) if (b.wQkv.data.length !== config.dModel * 3 * config.dModel) f.add('loaded a wrong-sized c_attn', what);
    } else {
      const p = userErrorProblem(r.error);
      if (p) f.add(p, what);
      else if (!(r.error as Error).message.includes(ck.dir)) f.add('message does not name the file', `${what}: ${(r.error as Error).message}`);
    }
  }
  t.diagnostic(`${N} mutated headers: ${loaded} still loaded (harmless edits), ${N - loaded} rejected`);
  assert.equal(f.total, 0, f.report());
});

test('dtypes PatchLens cannot read, or whose byte count does not match, name the tensor and the dtype', () => {
  const ck = checkpoint('dtypes', TINY);
  const headerLen = Number(ck.bytes.readBigUInt64LE(0));
  const header = JSON.parse(ck.bytes.toString('utf8', 8, 8 + headerLen)) as Record<string, { dtype: unknown; shape: number[]; data_offsets: number[] }>;
  const data = ck.bytes.subarray(8 + headerLen);
  const name = 'h.0.attn.c_attn.weight';
  for (const dtype of ['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2', 'Q4_K', 'f32', 'F32 ', '']) {
    const h = JSON.parse(JSON.stringify(header)) as typeof header;
    h[name]!.dtype = dtype;
    put(ck.st, Buffer.concat([headerBytes(h), data]));
    userError(() => loadCheckpoint(ck.dir), `'${name}'`, `'${dtype}'`, 'F32, F16, BF16 and F64');
  }
  for (const dtype of [7, null, ['F32']]) {
    const h = JSON.parse(JSON.stringify(header)) as typeof header;
    h[name]!.dtype = dtype;
    put(ck.st, Buffer.concat([headerBytes(h), data]));
    userError(() => loadCheckpoint(ck.dir), `'${name}'`, 'dtype');
  }
  // Readable dtypes whose size disagrees with the bytes given: F32 data labelled F16 or F64.
  for (const dtype of ['F16', 'BF16', 'F64']) {
    const h = JSON.parse(JSON.stringify(header)) as typeof header;
    h[name]!.dtype = dtype;
    put(ck.st, Buffer.concat([headerBytes(h), data]));
    userError(() => loadCheckpoint(ck.dir), `'${name}'`, dtype, 'bytes');
  }
});

test('weights whose shapes do not match config.json name the tensor and both shapes', () => {
  const ck = checkpoint('shapes', SMALL);
  const fresh = readFileSync(ck.config, 'utf8');
  const cases: [string, (c: Record<string, unknown>) => void, string[]][] = [
    ['n_embd 32 for 64-wide weights', (c) => ((c.n_embd = 32), (c.n_head = 4)), ['[64]', '[32]']],
    ['n_embd 128', (c) => (c.n_embd = 128), ['[64]', '[128]']],
    ['vocab 1499', (c) => Object.assign(c, { vocab_size: 1499, bos_token_id: 0, eos_token_id: 0 }), ["'wte.weight'", '[1500, 64]', '[1499, 64]']],
    ['vocab 50257', (c) => (c.vocab_size = 50257), ["'wte.weight'", '[1500, 64]', '[50257, 64]']],
    ['n_positions 64', (c) => ((c.n_positions = 64), (c.n_ctx = 64)), ["'wpe.weight'", '[32, 64]', '[64, 64]']],
    ['n_inner 128', (c) => (c.n_inner = 128), ["'h.0.mlp.c_fc.weight'", '[64, 256]', '[64, 128]']],
    ['n_layer 3 for 2 blocks', (c) => (c.n_layer = 3), ["'h.2.ln_1.weight'", 'missing']],
  ];
  for (const [what, edit, parts] of cases) {
    put(ck.config, fresh);
    editConfig(ck.config, edit);
    const msg = userError(() => loadCheckpoint(ck.dir), ...parts);
    assert.ok(msg.includes(ck.config) || msg.includes(ck.st), `${what}: ${msg}`);
  }
  // A transposed matrix: right element count, wrong layout (a checkpoint exported as nn.Linear).
  put(ck.config, fresh);
  const headerLen = Number(ck.bytes.readBigUInt64LE(0));
  const header = JSON.parse(ck.bytes.toString('utf8', 8, 8 + headerLen)) as Record<string, { shape: number[] }>;
  header['h.1.mlp.c_fc.weight']!.shape = [256, 64];
  put(ck.st, Buffer.concat([headerBytes(header), ck.bytes.subarray(8 + headerLen)]));
  userError(() => loadCheckpoint(ck.dir), "'h.1.mlp.c_fc.weight'", '[256, 64]', '[64, 256]');
});

test('config.json: wrong types, negative, non-integer, out-of-range and malformed values name the field', (t) => {
  const ck = checkpoint('config-fuzz', TINY);
  const fresh = JSON.parse(readFileSync(ck.config, 'utf8')) as Record<string, unknown>;
  const FIELDS = ['n_embd', 'n_head', 'n_layer', 'vocab_size', 'n_positions', 'n_inner', 'layer_norm_epsilon', 'activation_function', 'bos_token_id', 'eos_token_id', 'model_type'];
  const VALUES: unknown[] = [-1, 0, 1.5, -0.5, 1e9, 1e12, 2 ** 53, 1e308, '64', '', 'gpt2', true, [], [64], {}, { n: 1 }];
  const f = new Failures();
  let accepted = 0;
  for (const field of FIELDS) {
    for (const value of VALUES) {
      f.cases++;
      put(ck.config, JSON.stringify({ ...fresh, [field]: value }));
      const r = attempt(() => loadCheckpoint(ck.dir));
      if (r.ok) {
        accepted++;
        continue;
      }
      const p = userErrorProblem(r.error);
      const msg = (r.error as Error).message;
      if (p) f.add(p, `${field}=${JSON.stringify(value)}`);
      else if (!msg.includes(`'${field}'`) && !msg.includes('architecture') && !/tensor '[^']+'/.test(msg))
        f.add('message does not name the field', `${field}=${JSON.stringify(value)}: ${msg}`);
    }
  }
  // Text that is not a config at all.
  const texts: [string, string][] = [
    ['empty', ''],
    ['a BOM', `\ufeff${JSON.stringify(fresh)}`],
    ['Infinity via 1e400', JSON.stringify(fresh).replace(/"n_embd":\d+/, '"n_embd":1e400')],
    ['NaN', JSON.stringify(fresh).replace(/"n_embd":\d+/, '"n_embd":NaN')],
    ['multi-line broken JSON', '{\n  "n_embd": 8,\n  oops\n}'],
    // V8 quotes the text around an unexpected token, line breaks and all.
    ['an unexpected token in multi-line JSON', '{\n"n_embd":\nx\n}'],
    ['an array', '[1, 2]'],
    ['a string', '"gpt2"'],
    ['null', 'null'],
    ['10^5 nested arrays', '['.repeat(100_000)],
    ['binary', Buffer.from([0xff, 0xfe, 0, 1, 2, 3]).toString('latin1')],
  ];
  for (const [what, text] of texts) {
    f.cases++;
    put(ck.config, text);
    const r = attempt(() => loadCheckpoint(ck.dir));
    if (r.ok) f.add('a broken config.json loaded', what);
    else {
      const p = userErrorProblem(r.error);
      if (p) f.add(p, what);
      else if (!(r.error as Error).message.includes(ck.config)) f.add('message does not name config.json', `${what}: ${(r.error as Error).message}`);
    }
  }
  t.diagnostic(`${f.cases} configs: ${accepted} harmless edits accepted, the rest rejected`);
  assert.equal(f.total, 0, f.report());
});
