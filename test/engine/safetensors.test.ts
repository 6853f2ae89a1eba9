import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors';
import { UserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';

/** A safetensors file from a raw header object and data bytes, so tests can write files that lie. */
function rawFile(header: unknown, data: Buffer, headerPad = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header) + ' '.repeat(headerPad));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function u16(values: number[]): Buffer {
  const b = Buffer.alloc(2 * values.length);
  values.forEach((v, i) => b.writeUInt16LE(v, 2 * i));
  return b;
}

function expectUserError(fn: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), 'a UserError message is one line');
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `message '${e.message}' should mention '${p}'`);
      else assert.match(e.message, p);
    }
    return true;
  });
}

test('round trip keeps names, shapes, values and metadata; header is 8-byte padded; write is atomic', () => {
  const dir = makeTmpDir('st-roundtrip');
  const p = join(dir, 'a.safetensors');
  const tensors = {
    'z.last': { shape: [2, 3], data: Float32Array.from([1, -2, 3.5, 1e-30, -0, 6]) },
    'a.first': { shape: [4], data: Float32Array.from([Math.PI, Infinity, -Infinity, 0.1]) },
    scalar: { shape: [], data: Float32Array.from([42]) },
    empty: { shape: [0, 3], data: new Float32Array(0) },
  };
  writeSafetensors(p, tensors, { format: 'pt' });
  assert.deepEqual(readdirSync(dir), ['a.safetensors'], 'no temp file left behind');

  const buf = readFileSync(p);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal((8 + n) % 8, 0, 'data section starts 8-byte aligned');
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  assert.deepEqual(header.__metadata__, { format: 'pt' });
  assert.deepEqual(header['a.first'], { dtype: 'F32', shape: [4], data_offsets: [0, 16] });

  const back = readSafetensors(p);
  assert.deepEqual([...back.keys()].sort(), Object.keys(tensors).sort());
  for (const [name, t] of Object.entries(tensors)) {
    const b = back.get(name)!;
    assert.deepEqual(b.shape, t.shape, name);
    assert.deepEqual(Array.from(b.data), Array.from(t.data), name);
  }
  assert.ok(Object.is(back.get('z.last')!.data[4], -0), 'negative zero survives');
  // Zero-copy: aligned F32 tensors are views of one file buffer.
  assert.equal(back.get('a.first')!.data.buffer, back.get('z.last')!.data.buffer);
});

test('a header claiming more bytes than the file has is a UserError with both sizes', () => {
  const dir = makeTmpDir('st-lying');
  const p = join(dir, 'lying.safetensors');
  const b = Buffer.alloc(64);
  b.writeBigUInt64LE(10_000_000_000n);
  writeFileSync(p, b);
  expectUserError(() => readSafetensors(p), p, '10000000000', '56');

  // A u64 beyond 2^53 must not be rounded into something that "fits".
  b.writeBigUInt64LE(0xffffffffffffffffn);
  writeFileSync(p, b);
  expectUserError(() => readSafetensors(p), p, '18446744073709551615');
});

test('a truncated file (data section cut short) is a UserError, never an out-of-bounds read', () => {
  const dir = makeTmpDir('st-trunc');
  const p = join(dir, 'm.safetensors');
  writeSafetensors(p, { w: { shape: [16], data: new Float32Array(16).fill(1) } });
  const full = readFileSync(p);
  writeFileSync(p, full.subarray(0, full.length - 5));
  expectUserError(() => readSafetensors(p), p, "'w'", 'truncated');
  writeFileSync(p, full.subarray(0, 5));
  expectUserError(() => readSafetensors(p), p, '8-byte');
});

test('malformed headers are UserErrors naming the problem', () => {
  const dir = makeTmpDir('st-bad');
  const p = join(dir, 'bad.safetensors');
  const write = (header: unknown, data = Buffer.alloc(16)) => writeFileSync(p, rawFile(header, data));

  writeFileSync(p, Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{nope')]));
  expectUserError(() => readSafetensors(p), 'not JSON');
  write([1, 2]);
  expectUserError(() => readSafetensors(p), 'not a JSON object');
  write({ x: { shape: [4], data_offsets: [0, 16] } });
  expectUserError(() => readSafetensors(p), "'x'", 'dtype');
  write({ x: { dtype: 'F32', shape: [4, -1], data_offsets: [0, 16] } });
  expectUserError(() => readSafetensors(p), "'x'", 'shape');
  write({ x: { dtype: 'F32', shape: [4], data_offsets: [0] } });
  expectUserError(() => readSafetensors(p), "'x'", 'data_offsets');
  write({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } });
  expectUserError(() => readSafetensors(p), "'x'", '12 bytes', '16');
  write({ x: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } });
  expectUserError(() => readSafetensors(p), "'x'", '[12, 20]');
  expectUserError(() => readSafetensors(join(dir, 'missing.safetensors')), 'missing.safetensors', 'does not exist');
});

test('unsupported dtypes are UserErrors naming tensor and dtype', () => {
  const dir = makeTmpDir('st-dtype');
  const p = join(dir, 'i64.safetensors');
  writeFileSync(p, rawFile({ 'h.0.attn.bias': { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, Buffer.alloc(16)));
  expectUserError(() => readSafetensors(p), "'h.0.attn.bias'", "'I64'", p);
  writeFileSync(p, rawFile({ q: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 16] } }, Buffer.alloc(16)));
  expectUserError(() => readSafetensors(p), "'q'", "'Q4_K'");
});

test('F16, BF16 and F64 convert exactly to float32', () => {
  const dir = makeTmpDir('st-conv');
  const p = join(dir, 'mixed.safetensors');
  // [bits, value] pairs; includes subnormals, extremes, signed zero and infinities.
  const f16: [number, number][] = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3555, 0.333251953125],
    [0x8000, -0],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ];
  const bf16: [number, number][] = [
    [0x3f80, 1],
    [0xc049, -3.140625],
    [0x7f7f, 3.3895313892515355e38],
    [0x0001, 9.183549615799121e-41],
    [0x3eab, 0.333984375],
    [0x8000, -0],
    [0xff80, -Infinity],
  ];
  const f64 = [0.1, -1e-3, 1e300, 2 ** -140];
  const f64Buf = Buffer.alloc(8 * f64.length);
  f64.forEach((v, i) => f64Buf.writeDoubleLE(v, 8 * i));
  const a = u16(f16.map(([b]) => b));
  const c = u16(bf16.map(([b]) => b));
  const header = {
    __metadata__: { note: 'F32 data at an odd offset below forces the copying path' },
    h: { dtype: 'F16', shape: [f16.length], data_offsets: [0, a.length] },
    b: { dtype: 'BF16', shape: [bf16.length], data_offsets: [a.length, a.length + c.length] },
    d: { dtype: 'F64', shape: [2, 2], data_offsets: [a.length + c.length, a.length + c.length + f64Buf.length] },
    f: { dtype: 'F32', shape: [1], data_offsets: [a.length + c.length + f64Buf.length, a.length + c.length + f64Buf.length + 4] },
  };
  const f32 = Buffer.alloc(4);
  f32.writeFloatLE(-1.5);
  writeFileSync(p, rawFile(header, Buffer.concat([a, c, f64Buf, f32]), 1));
  const t = readSafetensors(p);
  assert.ok(!t.has('__metadata__'));
  const eq = (got: Float32Array, want: number[]) => {
    assert.equal(got.length, want.length);
    want.forEach((w, i) => assert.ok(Object.is(got[i], Math.fround(w)), `index ${i}: got ${got[i]}, want ${w}`));
  };
  eq(
    t.get('h')!.data,
    f16.map(([, v]) => v),
  );
  eq(
    t.get('b')!.data,
    bf16.map(([, v]) => v),
  );
  eq(t.get('d')!.data, f64);
  assert.deepEqual(t.get('d')!.shape, [2, 2]);
  eq(t.get('f')!.data, [-1.5]);
  assert.ok(Number.isNaN(readNaN(dir)), 'F16 NaN stays NaN');
});

function readNaN(dir: string): number {
  const p = join(dir, 'nan.safetensors');
  writeFileSync(p, rawFile({ n: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }, u16([0x7e00])));
  return readSafetensors(p).get('n')!.data[0]!;
}

test('files above the whole-file limit are read tensor by tensor, with the same values and checks', () => {
  const dir = makeTmpDir('st-large');
  const p = join(dir, 'big.safetensors');
  const tensors = {
    a: { shape: [3, 5], data: Float32Array.from({ length: 15 }, (_, i) => i * 0.37 - 2) },
    b: { shape: [7], data: Float32Array.from({ length: 7 }, (_, i) => -i) },
  };
  writeSafetensors(p, tensors);
  // wholeFileLimit 0 forces the path that files over 1 GiB (gpt2-large, gpt2-xl) take.
  const t = readSafetensors(p, { wholeFileLimit: 0 });
  assert.deepEqual(t.get('a')!.data, tensors.a.data);
  assert.deepEqual(t.get('b')!.data, tensors.b.data);
  assert.notEqual(t.get('a')!.data.buffer, t.get('b')!.data.buffer, 'one buffer per tensor');
  assert.equal(t.get('a')!.data.buffer.byteLength, 60, 'no whole-file buffer behind the tensor');
  const skipped = readSafetensors(p, { wholeFileLimit: 0, skip: (n) => n === 'b' });
  assert.deepEqual([...skipped.keys()], ['a']);

  const full = readFileSync(p);
  writeFileSync(p, full.subarray(0, full.length - 4));
  expectUserError(() => readSafetensors(p, { wholeFileLimit: 0 }), "'b'", 'truncated');
  const lying = Buffer.alloc(64);
  lying.writeBigUInt64LE(1000n);
  writeFileSync(p, lying);
  expectUserError(() => readSafetensors(p, { wholeFileLimit: 0 }), '1000', '56');
});
