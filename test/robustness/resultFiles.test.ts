/**
 * Result files and the run history under concurrency and corruption: a reader polling a result while it is rewritten
 * never sees half a file; several processes writing runs of the same name at once lose none; a
 * results folder with corrupt or foreign files lists them as unreadable instead of failing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { claimResultPath, writeResultFile } from '../../src/common/resultFile';
import { RESULT_FORMAT, type PatchResult } from '../../src/protocol/result';
import { makeTmpDir } from '../helpers/checkpoint';

const REPO = resolve(__dirname, '..', '..');
const WRITER = join(__dirname, 'resultWriter.ts');

function writer(...args: string[]): { child: ChildProcess; done: Promise<number> } {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, ...args], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<number>((res, rej) => child.on('exit', (code) => (code === 0 ? res(0) : rej(new Error(`writer ${args.join(' ')} exited ${code}: ${err}`)))));
  return { child, done };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Reads `path` in a loop until `done` settles; counts whole reads and torn ones. */
async function pollFile(path: string, done: Promise<unknown>): Promise<{ reads: number; torn: number; example?: string }> {
  let finished = false;
  void done.then(
    () => (finished = true),
    () => (finished = true),
  );
  let reads = 0;
  let torn = 0;
  let example: string | undefined;
  while (!finished) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      await tick();
      continue; // not created yet
    }
    reads++;
    try {
      const v = JSON.parse(text) as PatchResult;
      if (v.format !== RESULT_FORMAT || v.sweeps.resid_pre!.values.length !== v.sweeps.resid_pre!.shape[1]) throw new Error('mixed content');
    } catch {
      torn++;
      example ??= `${text.length} bytes: ${JSON.stringify(text.slice(-40))}`;
    }
    await tick();
  }
  await done;
  return { reads, torn, ...(example ? { example } : {}) };
}

test('a result rewritten 200 times while another process reads it: the reader never sees partial JSON', async (t) => {
  const dir = makeTmpDir('atomic');
  const path = join(dir, 'run.result.json');
  const w = writer('rewrite', path, '200');
  const r = await pollFile(path, w.done);
  t.diagnostic(`atomic writes: ${r.reads} reads during 200 rewrites, ${r.torn} torn`);
  assert.equal(r.torn, 0, `a reader saw a partial result: ${r.example}`);
  assert.ok(r.reads >= 20, `the reader only got ${r.reads} reads in; the race was not exercised`);
  assert.deepEqual(readdirSync(dir), ['run.result.json'], 'no temp files are left behind');

  // The control: the same race against a plain writeFileSync does tear (shown, not required: it is timing).
  const plain = join(dir, 'plain.result.json');
  const c = await pollFile(plain, writer('plain', plain, '100').done);
  t.diagnostic(`control, plain writeFileSync: ${c.reads} reads, ${c.torn} torn`);
});

test('three processes writing 40 runs each with the same name at once: 120 distinct files, none lost, none torn', async (t) => {
  const dir = makeTmpDir('concurrent');
  const { RunHistory } = await import('../../src/extension/runHistory');
  const history = new RunHistory();
  const writers = ['a', 'b', 'c'].map((tag) => writer('new', dir, 'same name', '40', tag));
  let finished = false;
  const all = Promise.all(writers.map((w) => w.done)).finally(() => (finished = true));
  // The runs view refreshes while runs are being written: it must never show a run as unreadable.
  let listings = 0;
  const unreadable: string[] = [];
  while (!finished) {
    for (const e of history.list(dir)) if (e.kind === 'unreadable') unreadable.push(`${e.path}: ${e.reason}`);
    listings++;
    await tick();
  }
  await all;
  assert.deepEqual(unreadable, [], 'a listing during the writes showed a run as unreadable');
  const files = readdirSync(dir).sort();
  assert.equal(files.length, 120, `expected 120 result files, got ${files.length}: ${files.filter((f) => !f.endsWith('.result.json')).join(', ')}`);
  assert.ok(
    files.every((f) => /^same_name(-\d+)?\.result\.json$/.test(f)),
    files.join(', '),
  );
  const seen = new Set<string>();
  for (const f of files) seen.add((JSON.parse(readFileSync(join(dir, f), 'utf8')) as PatchResult).model.id);
  for (const tag of ['a', 'b', 'c']) for (let i = 0; i < 40; i++) assert.ok(seen.has(`${tag}#${i}`), `run ${tag}#${i} was lost`);
  const listed = history.list(dir);
  assert.equal(listed.filter((e) => e.kind === 'result').length, 120);
  t.diagnostic(`${listings} listings during the writes, none unreadable; 120/120 runs kept`);
});

test('claimResultPath: names that collide after sanitizing, or are hostile, still get distinct files inside the folder', () => {
  const dir = makeTmpDir('claim');
  const names = ['run', 'run', 'r/u/n', 'r\\u\\n', '../../escape', '..', '.', '', ' ', 'CON', 'a'.repeat(5000), '😀', '\u0000', 'run.result.json', '.hidden', '-', 'run-2'];
  const paths = names.map((n) => claimResultPath(dir, n));
  assert.equal(new Set(paths).size, paths.length, 'every claim is a distinct file');
  for (const p of paths) {
    assert.equal(resolve(p, '..'), resolve(dir), `${p} is outside the results folder`);
    assert.ok(p.endsWith('.result.json'));
  }
  const r = JSON.parse(JSON.stringify({ format: RESULT_FORMAT })) as PatchResult;
  writeResultFile(paths[0]!, r);
  assert.deepEqual(JSON.parse(readFileSync(paths[0]!, 'utf8')), r);
});

const VALID: PatchResult = JSON.parse(
  JSON.stringify({
    format: RESULT_FORMAT,
    name: 'good',
    status: 'done',
    createdAt: new Date().toISOString(),
    spec: { metric: 'logit_diff', sweeps: ['resid_pre'] },
    model: { id: 'm', config: { nLayers: 1, nHeads: 1, dModel: 1, dHead: 1, dMlp: 1, dVocab: 1, nCtx: 1 }, dtype: 'float32', provider: 'cpu', weightProcessing: 'none' },
    engine: { version: '0', mode: 'fast', seconds: 0 },
    metric: 'logit_diff',
    tokens: [],
    sweeps: { resid_pre: { shape: [1, 2], axes: ['layer', 'pos'], values: [0.5, 1] } },
  }),
);

/** A results folder with a good result and every kind of bad file next to it; returns the bad names. */
function corruptFolder(dir: string): string[] {
  const good = claimResultPath(dir, 'good');
  writeResultFile(good, VALID);
  const validText = JSON.stringify(VALID);
  const bad: Record<string, string | Buffer> = {
    'truncated.result.json': validText.slice(0, validText.length / 2),
    'multiline-broken.result.json': '{\n  "format": "patchlens.result/1",\n  oops\n}',
    'unexpected-token.result.json': '{\n"format":\nx\n}',
    'foreign-object.result.json': '{"hello": "world"}',
    'array.result.json': '[1, 2, 3]',
    'string.result.json': '"a string"',
    'null.result.json': 'null',
    'binary.result.json': Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x89, 0x50, 0x4e, 0x47]),
    'bom.result.json': `\ufeff${validText}`,
    'other-format.result.json': JSON.stringify({ ...VALID, format: 'patchlens.result/999' }),
    'bad-status.result.json': JSON.stringify({ ...VALID, status: '<script>' }),
    'bad-shape.result.json': JSON.stringify({ ...VALID, sweeps: { resid_pre: { shape: [3, 3], axes: [], values: [1] } } }),
    'huge-shape.result.json': JSON.stringify({ ...VALID, sweeps: { resid_pre: { shape: [1e300, 1e300], axes: [], values: [] } } }),
    'no-model.result.json': JSON.stringify({ ...VALID, model: null }),
    'deep.result.json': '['.repeat(200_000) + ']'.repeat(200_000),
    'line-separator.result.json': `{"format": "\u2028"}`,
  };
  for (const [name, content] of Object.entries(bad)) writeFileSync(join(dir, name), content);
  mkdirSync(join(dir, 'a-folder.result.json'));
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling.result.json'));
  writeFileSync(join(dir, 'notes.txt'), 'not a result');
  return Object.keys(bad);
}

test('a results folder with corrupt and foreign files lists them as unreadable and never throws', async (t) => {
  const { RunHistory } = await import('../../src/extension/runHistory');
  const { readResultFile } = await import('../../src/common/resultFile');
  const dir = makeTmpDir('corrupt');
  const badNames = corruptFolder(dir);
  const history = new RunHistory();
  const entries = history.list(dir);
  const byName = new Map(entries.map((e) => [e.path.slice(dir.length + 1), e]));
  assert.equal(byName.get('good.result.json')?.kind, 'result');
  const problems: string[] = [];
  for (const name of badNames) {
    const e = byName.get(name);
    if (!e) problems.push(`${name}: not listed`);
    else if (e.kind !== 'unreadable') problems.push(`${name}: listed as a result`);
    else if (e.reason.length > 2000) problems.push(`${name}: reason of ${e.reason.length} characters`);
    // Opening it for the panel is refused with a UserError, not a crash.
    try {
      readResultFile(join(dir, name));
      problems.push(`${name}: readResultFile accepted it`);
    } catch (err) {
      if (!(err instanceof Error && err.name === 'UserError')) problems.push(`${name}: readResultFile threw ${String(err)}`);
    }
  }
  // A sweep named __proto__ (an own key, as JSON.parse makes it) must not disturb the listing.
  writeFileSync(join(dir, 'proto.result.json'), JSON.stringify({ ...VALID, sweeps: JSON.parse('{"__proto__": {"shape": [1], "axes": [], "values": [1]}}') }));
  assert.ok(history.list(dir).some((e) => e.path.endsWith('proto.result.json')));
  for (const name of ['a-folder.result.json', 'notes.txt', 'dangling.result.json'])
    assert.ok(!byName.has(name) || byName.get(name)!.kind === 'unreadable', `${name} listed as a result`);
  t.diagnostic(
    `${entries.length} entries listed: ${entries.filter((e) => e.kind === 'unreadable').length} unreadable, ${entries.filter((e) => e.kind === 'result').length} result`,
  );
  assert.deepEqual(problems, []);
});

test('the reason an unreadable result is shown with is one line', async () => {
  const { RunHistory } = await import('../../src/extension/runHistory');
  const { readResultFile } = await import('../../src/common/resultFile');
  const dir = makeTmpDir('corrupt-lines');
  const problems: string[] = [];
  for (const name of corruptFolder(dir)) {
    const listed = new RunHistory().list(dir).find((e) => e.path.endsWith(`/${name}`));
    let opened = '';
    try {
      readResultFile(join(dir, name));
    } catch (e) {
      opened = (e as Error).message;
    }
    for (const reason of [listed?.kind === 'unreadable' ? listed.reason : '', opened]) {
      if (/[\n\r\u2028\u2029]/.test(reason)) problems.push(`${name}: ${JSON.stringify(reason.slice(0, 160))}`);
    }
  }
  assert.deepEqual(problems, []);
});
