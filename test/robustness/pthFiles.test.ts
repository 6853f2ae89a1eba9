/**
 * Hostile and broken .pth files: pickles that would run code in Python, truncated and corrupted zips,
 * storages that lie about their sizes, views that point outside their storage. Each must be one clear
 * UserError, and nothing in the file may run.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPthStateDict } from '../../src/engine/model/pth';
import { makeTmpDir } from '../helpers/checkpoint';
import { Pickler, pickleStateDict, pickleTensor, torchSave, torchZip, type PickledTensor } from '../helpers/checkpoints/torchSave';
import { attempt, Failures, Rng, userErrorProblem } from './fuzz';

const dir = makeTmpDir('pth-hostile');
let n = 0;

/** A .pth file holding `pkl` as its data.pkl and these storages. */
function pth(pkl: Buffer, storages: Record<string, Buffer> = {}, extra: { name: string; data: Buffer }[] = []): string {
  const path = join(dir, `case-${n++}.pth`);
  writeFileSync(path, torchZip([{ name: 'archive/data.pkl', data: pkl }, ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data })), ...extra]));
  return path;
}

/** Reads the whole file (header, then every tensor); must throw a clean UserError mentioning every part. */
function refused(path: string, ...parts: string[]): string {
  const r = attempt(() => readPthStateDict(path).read(() => true));
  assert.ok(!r.ok, `expected a UserError for ${path}`);
  const problem = userErrorProblem(r.error);
  assert.equal(problem, undefined, problem);
  const msg = (r.error as Error).message;
  for (const p of parts) assert.ok(msg.includes(p), `message '${msg}' should mention '${p}'`);
  return msg;
}

const floats = (k: number) => Buffer.from(Float32Array.from({ length: k }, (_, i) => i / 10).buffer);
const tensor = (over: Partial<PickledTensor> = {}): PickledTensor => ({ storage: '0', storageType: 'FloatStorage', numel: 6, shape: [2, 3], ...over });

test('pickles that would run a command in Python are refused by name, and nothing runs', () => {
  const marker = join(dir, 'pwned');
  const cmd = `touch ${marker}`;
  // The classic: GLOBAL os.system, its argument tuple, REDUCE.
  const system = new Pickler().proto(2).global('os', 'system').mark().str(cmd).tuple().reduce().stop().bytes();
  refused(pth(system), 'os.system', 'never runs code');
  // The same as the value of a state-dict entry, after a legitimate tensor.
  const p = new Pickler().proto(2).op('}').mark();
  pickleTensor(p.str('w'), tensor());
  p.str('evil').global('posix', 'system').mark().str(cmd).tuple().reduce().op('u').stop();
  refused(pth(p.bytes(), { '0': floats(6) }), 'posix.system');
  // Other callables, through GLOBAL and through protocol 4's STACK_GLOBAL.
  for (const [module, name] of [
    ['builtins', 'eval'],
    ['builtins', 'exec'],
    ['subprocess', 'Popen'],
    ['__builtin__', 'getattr'],
    ['torch', 'load'],
    ['numpy.core.multiarray', '_reconstruct'],
    ['torch._utils', '_rebuild_device_tensor_from_numpy'],
  ]) {
    refused(pth(new Pickler().proto(2).global(module!, name!).mark().str(cmd).tuple().reduce().stop().bytes()), `${module}.${name}`);
    const stackGlobal = new Pickler().proto(4).str(module!).str(name!).raw(0x93).mark().str(cmd).tuple().reduce().stop().bytes();
    refused(pth(stackGlobal), `${module}.${name}`);
  }
  // Opcodes that build objects by name without GLOBAL: INST, OBJ, NEWOBJ.
  refused(pth(Buffer.concat([Buffer.from([0x80, 2, 0x28]), Buffer.from(`ios\nsystem\n`), new Pickler().str(cmd).stop().bytes()])), 'INST');
  refused(pth(new Pickler().proto(2).mark().global('collections', 'OrderedDict').op('o').stop().bytes()), 'OBJ');
  refused(pth(new Pickler().proto(2).global('collections', 'OrderedDict').tuple(0).raw(0x81).stop().bytes()), 'NEWOBJ');
  // Allowed names used as they never are in a state dict: a storage type called, BUILD on a tensor,
  // an OrderedDict built from arguments, a tensor rebuilt from a string.
  refused(pth(new Pickler().proto(2).global('torch', 'FloatStorage').mark().str(cmd).tuple().reduce().stop().bytes()), 'torch.FloatStorage');
  const build = new Pickler().proto(2).op('}').mark();
  pickleTensor(build.str('w'), tensor()).op('}').op('b').op('u').stop();
  refused(pth(build.bytes(), { '0': floats(6) }), 'not a dict');
  refused(pth(new Pickler().proto(2).global('collections', 'OrderedDict').mark().str(cmd).tuple().reduce().stop().bytes()), 'OrderedDict built from arguments');
  const fake = new Pickler()
    .proto(2)
    .op('}')
    .mark()
    .str('w')
    .global('torch._utils', '_rebuild_tensor_v2')
    .mark()
    .str(cmd)
    .int(0)
    .mark()
    .int(2)
    .tuple()
    .mark()
    .int(1)
    .tuple()
    .bool(false)
    .op('N')
    .tuple()
    .reduce()
    .op('u')
    .stop();
  refused(pth(fake.bytes()), 'not a storage');
  // A persistent id that is not a storage (torch's own loader would hand it to persistent_load).
  refused(pth(new Pickler().proto(2).mark().str('module').str(cmd).tuple().persid().stop().bytes()), 'not a torch storage');
  assert.ok(!existsSync(marker), 'nothing ran');
});

test('storages that lie about their sizes and views that point outside them are refused, naming the tensor', () => {
  const one = (t: PickledTensor) => pickleStateDict([['blocks.0.attn.W_Q', t]]);
  refused(pth(one(tensor({ numel: 6 })), { '0': floats(5) }), "storage '0'", '6 F32 values (24 bytes)', '20 bytes');
  refused(pth(one(tensor({ numel: 1e9, shape: [1000, 1000] })), { '0': floats(6) }), "storage '0'", '4000000000 bytes');
  refused(pth(one(tensor({ storageType: 'DoubleStorage' })), { '0': floats(6) }), '48 bytes');
  refused(pth(one(tensor({ storage: '7' })), { '0': floats(6) }), "storage '7'", 'archive/data/7');
  refused(pth(one(tensor({ storage: '../../etc/passwd' })), { '0': floats(6) }), 'not a plain name');
  refused(pth(one(tensor({ storageType: 'MysteryStorage' })), { '0': floats(6) }), 'torch.MysteryStorage');
  refused(pth(one(tensor({ offset: 1 })), { '0': floats(6) }), "'blocks.0.attn.W_Q'", 'element 6', 'has 6');
  refused(pth(one(tensor({ shape: [3, 3] })), { '0': floats(6) }), "'blocks.0.attn.W_Q'", 'element 8');
  refused(pth(one(tensor({ stride: [4, 1] })), { '0': floats(6) }), 'element 6');
  refused(pth(one(tensor({ shape: [0], offset: 7 })), { '0': floats(6) }), 'offset 7');
  refused(pth(one(tensor({ stride: [-3, 1] })), { '0': floats(6) }), 'non-negative');
  refused(pth(one(tensor({ stride: [3] })), { '0': floats(6) }), 'equally long');
  refused(pth(one(tensor({ storageType: 'LongStorage', numel: 6 })), { '0': Buffer.alloc(48) }), 'dtype I64');
  // The same storage described twice, with different sizes.
  refused(
    pth(
      pickleStateDict([
        ['a', tensor()],
        ['b', tensor({ numel: 3, shape: [3] })],
      ]),
      { '0': floats(6) },
    ),
    'described twice',
  );
  // A huge tensor over a small storage with a zero stride would read one element many times: allowed by
  // torch (expand), but its size must still be the product of its shape, which the loader checks against
  // the config; here only that nothing is over-read.
  const expanded = readPthStateDict(pth(one(tensor({ shape: [2, 3], stride: [0, 1], numel: 3 })), { '0': floats(3) })).read(() => true);
  assert.deepEqual(
    Array.from(expanded.get('blocks.0.attn.W_Q')!.data),
    [0, 0.1, 0.2, 0, 0.1, 0.2].map((v) => Math.fround(v)),
  );
});

test('damaged archives: truncated at every byte, compressed, encrypted, legacy format, big-endian, not a state dict', () => {
  const path = join(dir, 'whole.pth');
  torchSave(path, { a: { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) }, b: { shape: [3], data: Float32Array.from([5, 6, 7]) } });
  const whole = readPthStateDict(path);
  assert.deepEqual([...whole.header.keys()], ['a', 'b']);
  const bytes = readFileSync(path);
  for (let cut = 0; cut < bytes.length; cut++) {
    const p = join(dir, 'cut.pth');
    writeFileSync(p, bytes.subarray(0, cut));
    refused(p, p);
  }
  // A storage entry marked compressed (method 8) in the directory.
  const compressed = Buffer.from(bytes);
  const cdAt = compressed.indexOf(Buffer.from('PK\u0001\u0002', 'latin1'), 0);
  const second = compressed.indexOf(Buffer.from('PK\u0001\u0002', 'latin1'), cdAt + 4);
  compressed.writeUInt16LE(8, second + 10);
  const pc = join(dir, 'compressed.pth');
  writeFileSync(pc, compressed);
  refused(pc, 'compressed');
  const encrypted = Buffer.from(bytes);
  encrypted.writeUInt16LE(1, cdAt + 8);
  const pe = join(dir, 'encrypted.pth');
  writeFileSync(pe, encrypted);
  refused(pe, 'encrypted');
  // Pre-1.6 torch.save: a bare pickle stream.
  const legacy = join(dir, 'legacy.pth');
  writeFileSync(legacy, Buffer.concat([Buffer.from([0x80, 2, 0x8a, 10]), Buffer.alloc(40)]));
  refused(legacy, 'legacy', 'save it again');
  refused(pth(pickleStateDict([['a', tensor()]]), { '0': floats(6) }, [{ name: 'archive/byteorder', data: Buffer.from('big') }]), 'big-endian');
  refused(pth(new Pickler().proto(2).op(']').stop().bytes()), 'other than a dict');
  refused(pth(new Pickler().proto(2).op('}').stop().bytes()), 'no tensors');
  refused(pth(new Pickler().proto(2).op('}').raw(0x68, 9).stop().bytes()), 'memo entry 9');
  refused(pth(new Pickler().proto(2).op('}').str('x').bytes()), 'ends in the middle');
  refused(pth(new Pickler().proto(2).op('u').stop().bytes()), 'MARK');
  const noPkl = join(dir, 'nopkl.pth');
  writeFileSync(noPkl, torchZip([{ name: 'archive/data/0', data: floats(6) }]));
  refused(noPkl, 'data.pkl');
  const notZip = join(dir, 'notzip.pth');
  writeFileSync(notZip, 'hello, this is not a model');
  refused(notZip, 'zip');
});

test('random byte flips anywhere in a .pth: every file either reads with checked tensors or is one clean UserError', () => {
  const path = join(dir, 'fuzz-base.pth');
  const tensors = { 'embed.W_E': { shape: [5, 4], data: Float32Array.from({ length: 20 }, (_, i) => i) }, 'ln.w': { shape: [4], data: Float32Array.from([1, 2, 3, 4]) } };
  torchSave(path, tensors);
  const bytes = readFileSync(path);
  const rng = new Rng(11);
  const failures = new Failures();
  let loaded = 0;
  for (let c = 0; c < 1500; c++) {
    const b = Buffer.from(bytes);
    for (let k = rng.int(1, 4); k > 0; k--) b[rng.int(0, b.length)] = rng.int(0, 256);
    const p = join(dir, 'fuzz.pth');
    writeFileSync(p, b);
    failures.cases++;
    const r = attempt(() => readPthStateDict(p).read(() => true));
    if (r.ok) {
      loaded++;
      for (const [name, t] of r.value) if (t.data.length !== t.shape.reduce((x, y) => x * y, 1)) failures.add('tensor size', `case ${c}: ${name}`);
    } else {
      const problem = userErrorProblem(r.error);
      if (problem) failures.add(problem.slice(0, 60), `case ${c}: ${problem}`);
    }
  }
  assert.equal(failures.total, 0, failures.report());
  assert.ok(loaded > 0 && loaded < 1500, `${loaded} of 1500 flipped files loaded`);
});
