/**
 * The .pth reader on files written by real torch (the golden TransformerLens checkpoint) and by the test
 * writer of torch.save's format: names, dtypes, shapes, values, views into shared storages.
 * test/robustness/pthFiles.test.ts has the hostile files.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { readPthStateDict } from '../../src/engine/model/pth';
import { uniform } from '../../src/engine/random';
import type { Tensor32 } from '../../src/engine/tensor';
import { makeTmpDir } from '../helpers/checkpoint';
import { Pickler, pickleStateDict, pickleTensor, torchSave, torchZip } from '../helpers/checkpoints/torchSave';

const GOLDEN_PTH = resolve(__dirname, '../fixtures/golden/neel-attn-only-2l4h/model/model_final.pth');

function randomTensor(shape: number[], seed: number): Tensor32 {
  const u = uniform(seed);
  return { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * u() - 1) };
}

test('a state dict saved by real torch: every name, dtype and shape, and values as Python reads the raw storages', () => {
  const dict = readPthStateDict(GOLDEN_PTH);
  const shapes: Record<string, number[]> = {
    'embed.W_E': [1000, 32],
    'pos_embed.W_pos': [64, 32],
    'ln_final.w': [32],
    'ln_final.b': [32],
    'unembed.W_U': [32, 1000],
    'unembed.b_U': [1000],
  };
  for (const l of [0, 1]) {
    Object.assign(shapes, {
      [`blocks.${l}.ln1.w`]: [32],
      [`blocks.${l}.ln1.b`]: [32],
      [`blocks.${l}.attn.W_Q`]: [4, 32, 8],
      [`blocks.${l}.attn.b_Q`]: [4, 8],
      [`blocks.${l}.attn.W_K`]: [4, 32, 8],
      [`blocks.${l}.attn.b_K`]: [4, 8],
      [`blocks.${l}.attn.W_V`]: [4, 32, 8],
      [`blocks.${l}.attn.b_V`]: [4, 8],
      [`blocks.${l}.attn.W_O`]: [4, 8, 32],
      [`blocks.${l}.attn.b_O`]: [32],
    });
  }
  assert.deepEqual(new Set(dict.header.keys()), new Set(Object.keys(shapes)));
  for (const [name, h] of dict.header) {
    assert.equal(h.dtype, 'F32', name);
    assert.deepEqual(h.shape, shapes[name], name);
  }
  const got = dict.read((n) => n === 'blocks.0.attn.W_Q' || n === 'blocks.1.attn.W_O' || n === 'unembed.b_U');
  assert.deepEqual([...got.keys()].sort(), ['blocks.0.attn.W_Q', 'blocks.1.attn.W_O', 'unembed.b_U']);
  // Read from the storages' raw bytes with Python's zipfile and struct (no torch involved).
  const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));
  assert.deepEqual(Array.from(got.get('blocks.0.attn.W_Q')!.data.slice(0, 4)), f32([0.018212540075182915, -0.013135535642504692, 0.0105980783700943, -0.014390244148671627]));
  assert.deepEqual(Array.from(got.get('blocks.1.attn.W_O')!.data.slice(-3)), f32([-0.028313331305980682, 0.022479714825749397, 0.0203618872910738]));
  assert.deepEqual(Array.from(got.get('unembed.b_U')!.data.slice(0, 4)), f32([-0.010889698751270771, 0.0143654216080904, -0.0069878557696938515, -0.024936025962233543]));
  assert.equal(got.get('blocks.0.attn.W_Q')!.data.length, 4 * 32 * 8);
});

test('float32, float16, bfloat16 and float64 storages read back as float32; only the wanted tensors are read', () => {
  const dir = makeTmpDir('pth-dtypes');
  const a = randomTensor([3, 5], 1);
  const b = randomTensor([7], 2);
  for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as const) {
    const path = join(dir, `${dtype}.pth`);
    torchSave(path, { a, b }, { dtype, root: dtype });
    const dict = readPthStateDict(path);
    assert.deepEqual(
      [...dict.header],
      [
        ['a', { dtype, shape: [3, 5] }],
        ['b', { dtype, shape: [7] }],
      ],
    );
    const got = dict.read((n) => n === 'a');
    assert.deepEqual([...got.keys()], ['a']);
    const tol = dtype === 'F16' ? 1e-3 : dtype === 'BF16' ? 8e-3 : 0;
    a.data.forEach((v, i) => assert.ok(Math.abs(got.get('a')!.data[i]! - v) <= tol * Math.max(1, Math.abs(v)), `${dtype} [${i}]`));
  }
});

test('views: shared storages, offsets, transposed strides and parameters read as the tensors torch would rebuild', () => {
  const dir = makeTmpDir('pth-views');
  const store = randomTensor([24], 3).data; // one storage of 24 floats
  const p = new Pickler().proto(2).op('}').mark();
  // 'whole' [4, 6]; 'tail' the last 2 rows via an offset; 'transposed' the [6, 4] transpose (strides 1, 6);
  // 'column' column 2 of 'whole' ([4], stride 6); 'param' an nn.Parameter around a [2, 3] slice; 'step' a scalar.
  pickleTensor(p.str('whole'), { storage: '0', storageType: 'FloatStorage', numel: 24, shape: [4, 6] });
  pickleTensor(p.str('tail'), { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 12, shape: [2, 6] });
  pickleTensor(p.str('transposed'), { storage: '0', storageType: 'FloatStorage', numel: 24, shape: [6, 4], stride: [1, 6] });
  pickleTensor(p.str('column'), { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 2, shape: [4], stride: [6] });
  p.str('param').global('torch._utils', '_rebuild_parameter').mark();
  pickleTensor(p, { storage: '0', storageType: 'FloatStorage', numel: 24, offset: 1, shape: [2, 3], stride: [6, 1] });
  p.bool(false).global('collections', 'OrderedDict').tuple(0).reduce().tuple().reduce();
  p.str('step').int(1000);
  const pkl = p.op('u').stop().bytes();
  const path = join(dir, 'views.pth');
  writeFileSync(
    path,
    torchZip([
      { name: 'views/data.pkl', data: pkl },
      { name: 'views/data/0', data: Buffer.from(store.buffer) },
      { name: 'views/version', data: Buffer.from('3\n') },
    ]),
  );
  const dict = readPthStateDict(path);
  assert.deepEqual([...dict.header.keys()], ['whole', 'tail', 'transposed', 'column', 'param'], 'the integer entry is not a tensor');
  const t = dict.read(() => true);
  const at = (i: number) => store[i]!;
  assert.deepEqual(Array.from(t.get('whole')!.data), Array.from(store));
  assert.deepEqual(Array.from(t.get('tail')!.data), Array.from(store.slice(12)));
  assert.deepEqual(
    Array.from(t.get('transposed')!.data),
    Array.from({ length: 24 }, (_, k) => at((k % 4) * 6 + Math.floor(k / 4))),
  );
  assert.deepEqual(Array.from(t.get('column')!.data), [at(2), at(8), at(14), at(20)]);
  assert.deepEqual(Array.from(t.get('param')!.data), [at(1), at(2), at(3), at(7), at(8), at(9)]);
  assert.deepEqual(t.get('transposed')!.shape, [6, 4]);
});

test('an OrderedDict state dict (model.state_dict()) and a plain dict read alike; zip64 end records are followed', () => {
  const dir = makeTmpDir('pth-dicts');
  const w = randomTensor([2, 2], 4);
  for (const plainDict of [false, true]) {
    const pkl = pickleStateDict([['w', { storage: '0', storageType: 'FloatStorage', numel: 4, shape: [2, 2] }]], { plainDict });
    const path = join(dir, `${plainDict}.pth`);
    writeFileSync(
      path,
      torchZip(
        [
          { name: 'm/data.pkl', data: pkl },
          { name: 'm/data/0', data: Buffer.from(w.data.buffer) },
        ],
        { zip64Only: plainDict },
      ),
    );
    assert.deepEqual(
      Array.from(
        readPthStateDict(path)
          .read(() => true)
          .get('w')!.data,
      ),
      Array.from(w.data),
    );
  }
});
