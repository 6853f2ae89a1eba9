/**
 * `patchlens run` fed hostile or careless files and folders, as a user (or an attacker planting files)
 * would: files that never end, FIFOs and devices where files belong, symlinks planted where outputs go,
 * names that collide or hide, folders that cannot be written, specs given by a special path, file content
 * that carries terminal escape sequences, and ambiguous model names. Every run is the built CLI in a
 * temporary folder, bounded in time (a hung run is killed and fails its test) and, where it reads
 * something endless, in memory. Issue 14, classes 1, 2, 5, 6, 7 and 9; the hub's are in hostileHub.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { createNewFile, replaceFile } from '../../src/common/fileWrite';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { writeRandomTlCheckpoint } from '../helpers/checkpoints/transformerLens';
import { type CliOptions, type CliRun, startCli, startCliShell } from '../helpers/cli';
import { assertOneLine, assertPrintable, BUILT, lines, openDir, readOnlyDir, specText, unprivileged } from './hostile';

const skip = !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)';
const hasMkfifo = spawnSync('mkfifo', ['--version']).status === 0;

let work: string;
let model: string;
/** Peak RSS of a run that fails at once (a missing spec): what the CLI costs before reading anything. */
let baselineMiB: number;

const run = (args: string[], opts: CliOptions = {}): Promise<CliRun> => startCli(args, { cwd: work, timeoutMs: 30_000, ...opts }).done;

before(async () => {
  work = openDir(makeTmpDir('hostile-files'));
  model = join(work, 'model');
  // GPT-2's vocabulary and tokenizer, one tiny layer: runs in well under a second.
  writeRandomGpt2Checkpoint(model, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 50257, nCtx: 32, seed: 41, withTokenizer: true });
  if (!skip) {
    const r = await run(['run', join(work, 'missing.patch.json'), '--quiet']);
    assert.equal(r.status, 1, r.stderr);
    baselineMiB = r.peakRssMiB!;
  }
});

/** A fresh case folder holding a spec that names `modelDir`. */
function caseDir(name: string, modelDir = model, extra: Record<string, unknown> = {}): { dir: string; spec: string } {
  const dir = openDir(join(work, name));
  const spec = join(dir, 'spec.patch.json');
  writeFileSync(spec, specText(modelDir, extra));
  return { dir, spec };
}

/** A copy of the model folder with `file` replaced by what `plant` puts there. */
function modelWith(name: string, file: string, plant: (path: string) => void): string {
  const dir = join(work, 'models', name);
  rmSync(dir, { recursive: true, force: true });
  cpSync(model, dir, { recursive: true });
  rmSync(join(dir, file), { recursive: true, force: true });
  plant(join(dir, file));
  return dir;
}

const mkfifo = (path: string) => assert.equal(spawnSync('mkfifo', [path]).status, 0, `mkfifo ${path}`);

function assertBoundedMemory(r: CliRun): void {
  assert.ok(r.peakRssMiB !== undefined, 'the run reported its peak memory');
  assert.ok(r.peakRssMiB < baselineMiB + 100, `peak RSS ${r.peakRssMiB.toFixed(0)} MiB, baseline ${baselineMiB.toFixed(0)} MiB`);
}

// Class 1: reads are bounded while they happen, and only regular files are read.

test('class 1: /dev/zero as the spec is refused up front: one line, exit 1, within seconds, no memory growth', { skip }, async (t) => {
  const r = await run(['run', '/dev/zero', '--quiet', '--device', 'cpu']);
  assertOneLine(r, 1, '/dev/zero', 'character device');
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  assertBoundedMemory(r);
  t.diagnostic(`/dev/zero: ${r.ms} ms, peak RSS ${r.peakRssMiB!.toFixed(0)} MiB (baseline ${baselineMiB.toFixed(0)} MiB)`);
});

test('class 1: an endless pipe as the spec (cat /dev/zero | patchlens run /dev/stdin) stops at the size limit', { skip }, async (t) => {
  const r = await startCliShell(`cat /dev/zero | $PATCHLENS run /dev/stdin --quiet --device cpu`, { cwd: work, timeoutMs: 30_000 }).done;
  assertOneLine(r, 1, '/dev/stdin', 'larger than 30 MiB');
  assertBoundedMemory(r);
  t.diagnostic(`endless pipe: ${r.ms} ms, peak RSS ${r.peakRssMiB!.toFixed(0)} MiB (baseline ${baselineMiB.toFixed(0)} MiB)`);
});

test('class 1: a FIFO with no writer as the spec: the wait ends on Ctrl-C with exit 130 and one line', { skip: skip || (!hasMkfifo && 'no mkfifo') }, async () => {
  const { dir } = caseDir('fifo-spec');
  const fifo = join(dir, 'fifo.patch.json');
  mkfifo(fifo);
  const p = startCli(['run', fifo, '--quiet', '--device', 'cpu'], { cwd: dir, timeoutMs: 20_000 });
  await new Promise((r) => setTimeout(r, 1000));
  p.child.kill('SIGINT');
  const r = await p.done;
  assertOneLine(r, 130, 'cancelled', fifo);
});

const MODEL_FILE_CASES: [what: string, file: string, plant: (path: string) => void, says: string[]][] = [
  ['config.json is a FIFO', 'config.json', mkfifo, ['config.json', 'FIFO']],
  ['config.json is a folder', 'config.json', (p) => mkdirSync(p), ['config.json', 'folder']],
  ['config.json is a symlink to /dev/zero', 'config.json', (p) => symlinkSync('/dev/zero', p), ['config.json', 'character device']],
  ['tokenizer.json is a FIFO', 'tokenizer.json', mkfifo, ['tokenizer.json', 'FIFO']],
  ['tokenizer.json is a symlink to /dev/zero', 'tokenizer.json', (p) => symlinkSync('/dev/zero', p), ['tokenizer.json', 'character device']],
  ['tokenizer_config.json is a FIFO', 'tokenizer_config.json', mkfifo, ['tokenizer_config.json', 'FIFO']],
  ['model.safetensors is a FIFO', 'model.safetensors', mkfifo, ['model.safetensors', 'FIFO']],
  ['model.safetensors is a folder', 'model.safetensors', (p) => mkdirSync(p), ['model.safetensors', 'folder']],
  ['model.safetensors is a symlink to /dev/zero', 'model.safetensors', (p) => symlinkSync('/dev/zero', p), ['model.safetensors', 'character device']],
  ['config.json is 5 MiB (over its 4 MiB limit)', 'config.json', (p) => writeFileSync(p, `{"model_type": "gpt2"${' '.repeat(5 << 20)}}`), ['config.json', 'larger than 4 MiB']],
  [
    'tokenizer_config.json is 17 MiB (over its 16 MiB limit)',
    'tokenizer_config.json',
    (p) => writeFileSync(p, `{${' '.repeat(17 << 20)}}`),
    ['tokenizer_config.json', 'larger than 16 MiB'],
  ],
];

for (const [what, file, plant, says] of MODEL_FILE_CASES) {
  test(`class 1: ${what}: one line naming it, exit 1, within seconds`, { skip: skip || (plant === mkfifo && !hasMkfifo && 'no mkfifo') }, async () => {
    const dir = modelWith(what.replace(/[^a-z0-9]+/gi, '-'), file, plant);
    const { spec } = caseDir(`model-${what.replace(/[^a-z0-9]+/gi, '-')}`, dir);
    const r = await run(['run', spec, '--quiet', '--device', 'cpu']);
    assertOneLine(r, 1, ...says);
    assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
    assertBoundedMemory(r);
  });
}

test('class 1: a safetensors index that is a FIFO is refused the same way', { skip: skip || (!hasMkfifo && 'no mkfifo') }, async () => {
  const dir = modelWith('index-fifo', 'model.safetensors', () => undefined);
  mkfifo(join(dir, 'model.safetensors.index.json'));
  const { spec } = caseDir('model-index-fifo', dir);
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu']), 1, 'model.safetensors.index.json', 'FIFO');
});

test('class 1: a TransformerLens model_final.pth that is a FIFO is refused the same way', { skip: skip || (!hasMkfifo && 'no mkfifo') }, async () => {
  const dir = join(work, 'models', 'tl-fifo');
  writeRandomTlCheckpoint(dir, { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 50, nCtx: 8, seed: 5, attnOnly: true });
  rmSync(join(dir, 'model_final.pth'));
  mkfifo(join(dir, 'model_final.pth'));
  const { spec } = caseDir('model-pth-fifo', dir, { pairs: [{ clean_ids: [0, 1, 2], corrupted_ids: [0, 1, 3], answer_id: 1, wrong_id: 2 }] });
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu']), 1, 'model_final.pth', 'FIFO');
});

// Class 2: outputs never follow a symlink or replace another run's files; one name sanitiser.

const isLink = (p: string) => lstatSync(p).isSymbolicLink();

test('class 2: symlinks planted where the result file and its PNGs go are never written through', { skip }, async () => {
  const { dir, spec } = caseDir('planted');
  const out = join(dir, 'out');
  mkdirSync(out);
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious');
  const never = join(dir, 'never-created.txt');
  symlinkSync(victim, join(out, 'speaker.result.json'));
  symlinkSync(victim, join(out, 'speaker-2.resid_pre.png'));
  symlinkSync(never, join(out, 'speaker-3.attn_out.png'));
  const r = await run(['run', spec, '--quiet', '--device', 'cpu', '--png', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(!existsSync(never), 'a dangling symlink was followed');
  // The run took the first number none of whose files exists, and named all its files after it.
  assert.deepEqual(
    lines(r.stdout),
    ['speaker-4.result.json', 'speaker-4.resid_pre.png', 'speaker-4.attn_out.png'].map((f) => join(out, f)),
  );
  for (const p of lines(r.stdout)) assert.ok(lstatSync(p).isFile(), `${p} is a plain file`);
  assert.ok(isLink(join(out, 'speaker.result.json')) && isLink(join(out, 'speaker-2.resid_pre.png')) && isLink(join(out, 'speaker-3.attn_out.png')));
});

test("class 2: a second run of the same spec keeps the first run's PNGs and names its own after its result file", { skip }, async () => {
  const { dir, spec } = caseDir('twice');
  const first = await run(['run', spec, '--quiet', '--device', 'cpu', '--png']);
  assert.equal(first.status, 0, first.stderr);
  const out = join(dir, '.patchlens', 'runs');
  const before = lines(first.stdout).map((p) => ({ p, bytes: readFileSync(p), ino: statSync(p).ino }));
  const second = await run(['run', spec, '--quiet', '--device', 'cpu', '--png']);
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(
    lines(second.stdout),
    ['speaker-2.result.json', 'speaker-2.resid_pre.png', 'speaker-2.attn_out.png'].map((f) => join(out, f)),
  );
  for (const b of before) {
    assert.deepEqual(readFileSync(b.p), b.bytes, `${b.p} was rewritten`);
    assert.equal(statSync(b.p).ino, b.ino, `${b.p} was replaced`);
  }
});

test('class 2 and 5: hostile and careless run names get distinct, visible, short file names (a 300-character name with --png)', { skip }, async () => {
  const { dir } = caseDir('names');
  const out = join(dir, 'out');
  const names = ['a/b', 'a\u0000b', 'x'.repeat(300), '.hidden', 'a\\b', '..', '-rf', 'evil\u202egnp.exe', '\u00e9t\u00e9 \u65e5\u672c', 'CON', 'a\u001b]0;title\u0007b'];
  const stems: string[] = [];
  for (const [i, name] of names.entries()) {
    const spec = join(dir, `n${i}.patch.json`);
    writeFileSync(spec, specText(model, { name, sweeps: ['resid_pre'] }));
    // PNGs (slow to draw) for the names the issue found colliding, too long or hidden; the same stem names every file.
    const r = await run(['run', spec, '--quiet', '--device', 'cpu', ...(i < 4 ? ['--png'] : []), '--out', out]);
    assert.equal(r.status, 0, `${JSON.stringify(name)}: ${r.stderr}`);
    const [result, ...pngs] = lines(r.stdout);
    const stem = result!.slice(out.length + 1, -'.result.json'.length);
    for (const p of pngs) assert.ok(p.startsWith(join(out, `${stem}.`)) && p.endsWith('.png'), `${p} is named after ${stem}`);
    stems.push(stem);
  }
  assert.equal(new Set(stems).size, stems.length, `distinct stems: ${stems.join(' | ')}`);
  for (const f of readdirSync(out)) {
    assert.ok(!f.startsWith('.') && !f.startsWith('-'), `${f} is hidden or looks like an option`);
    assert.ok(Buffer.byteLength(f) <= 255, `${f.length}-character file name`);
    assertPrintable(f);
  }
  assert.equal(stems[9], 'CON_');
  assert.equal(stems[8], '\u00e9t\u00e9_\u65e5\u672c');
  assert.equal(readdirSync(out).filter((f) => f.endsWith('.png')).length, 4);
});

test('class 2: the writers behind exports, new spec files and the cache replace a planted symlink, never its target', () => {
  const dir = makeTmpDir('hostile-writers');
  const victim = join(dir, 'victim.txt');
  writeFileSync(victim, 'precious');
  // An export or a new spec file the user chose in a save dialog: the symlink itself is replaced.
  for (const name of ['export.csv', 'heatmap.png', 'result.json', 'new.patch.json']) {
    const p = join(dir, name);
    symlinkSync(victim, p);
    replaceFile(p, 'data');
    assert.ok(lstatSync(p).isFile() && readFileSync(p, 'utf8') === 'data', name);
  }
  // A new file (a PNG, a copied example, a claimed result): refused, neither target touched nor created.
  symlinkSync(victim, join(dir, 'to-victim.png'));
  symlinkSync(join(dir, 'nowhere.txt'), join(dir, 'dangling.png'));
  for (const name of ['to-victim.png', 'dangling.png']) assert.throws(() => createNewFile(join(dir, name), 'data'), /EEXIST/);
  assert.equal(readFileSync(victim, 'utf8'), 'precious');
  assert.ok(!existsSync(join(dir, 'nowhere.txt')));
  assert.deepEqual(
    readdirSync(dir).filter((f) => f.includes('.tmp-')),
    [],
    'no temp files left',
  );
});

// Class 5: setup and write errors are one line with exit 1; a result is never lost.

test('class 5: --out naming a file: one line naming it and the fix, exit 1, before any work', { skip }, async () => {
  const { dir, spec } = caseDir('out-file');
  const out = join(dir, 'not-a-folder');
  writeFileSync(out, 'x');
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu', '--out', out]), 1, out, 'writable results folder');
});

test('class 5: --cache naming a file, with the built-in model: one line, exit 1', { skip }, async () => {
  const { dir, spec } = caseDir('cache-file', 'induction-2l', { pairs: [{ clean_ids: [0, 1, 2], corrupted_ids: [0, 1, 3], answer_id: 1, wrong_id: 2 }] });
  writeFileSync(join(dir, 'cache'), 'x');
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu', '--cache', join(dir, 'cache')]), 1, 'model cache', join(dir, 'cache'), 'writable');
});

test('class 5: --hub-endpoint "not a url": one line, exit 1', { skip }, async () => {
  const { spec } = caseDir('bad-endpoint', 'org/model');
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu', '--hub-endpoint', 'not a url']), 1, "'not a url'", 'http(s) URL');
});

const noUser = !unprivileged && 'the unprivileged user cannot run the CLI from this checkout';

test('class 5: a read-only --out folder: one line naming it, exit 1', { skip: skip || noUser }, async () => {
  const { dir, spec } = caseDir('out-readonly');
  const out = readOnlyDir(join(dir, 'ro'));
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu', '--out', out], unprivileged?.opts), 1, out, 'EACCES', 'writable results folder');
});

test('class 5: a read-only spec folder: the results go to the current directory, and the run says so', { skip: skip || noUser }, async () => {
  const specDir = join(work, 'spec-readonly');
  mkdirSync(specDir, { recursive: true });
  writeFileSync(join(specDir, 'spec.patch.json'), specText(model));
  readOnlyDir(specDir);
  const cwd = openDir(join(work, 'spec-readonly-cwd'));
  const r = await run(['run', join(specDir, 'spec.patch.json'), '--device', 'cpu'], { ...unprivileged?.opts, cwd });
  assert.equal(r.status, 0, r.stderr);
  assert.match(lines(r.stderr)[0]!, /cannot write results beside the spec .*EACCES.*they go to .*spec-readonly-cwd/);
  assert.deepEqual(lines(r.stdout), [join(cwd, '.patchlens', 'runs', 'speaker.result.json')]);
});

test('class 5: spec folder and current directory both read-only: one line, exit 1', { skip: skip || noUser }, async () => {
  const specDir = join(work, 'spec-readonly');
  const r = await run(['run', join(specDir, 'spec.patch.json'), '--quiet', '--device', 'cpu'], { ...unprivileged?.opts, cwd: specDir });
  assertOneLine(r, 1, 'cannot write results', 'EACCES', '--out');
});

test('class 5: a read-only --cache, with the built-in model: one line, exit 1', { skip: skip || noUser }, async () => {
  const { dir, spec } = caseDir('cache-readonly', 'induction-2l', { pairs: [{ clean_ids: [0, 1, 2], corrupted_ids: [0, 1, 3], answer_id: 1, wrong_id: 2 }] });
  const cache = readOnlyDir(join(dir, 'cache'));
  assertOneLine(await run(['run', spec, '--quiet', '--device', 'cpu', '--cache', cache], unprivileged?.opts), 1, 'model cache', 'EACCES', 'writable');
});

// Class 6: specs given by a special path.

test('class 6: patchlens run <(cat spec): the results go to the current directory, and the run ends', { skip }, async () => {
  const { dir, spec } = caseDir('process-substitution');
  const r = await startCliShell(`$PATCHLENS run <(cat '${spec}') --device cpu`, { cwd: dir, timeoutMs: 30_000 }).done;
  assert.ok(!r.timedOut, `hung: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(lines(r.stderr)[0]!, /is not a file in a folder .*results go to/);
  assert.deepEqual(lines(r.stdout), [join(dir, '.patchlens', 'runs', 'speaker.result.json')]);
});

test('class 6: a spec on /dev/stdin: the results go to the current directory, never under /dev', { skip }, async () => {
  const { dir, spec } = caseDir('dev-stdin');
  const existed = existsSync('/dev/.patchlens');
  const r = await startCliShell(`$PATCHLENS run /dev/stdin --quiet --device cpu < '${spec}'`, { cwd: dir, timeoutMs: 30_000 }).done;
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(lines(r.stdout), [join(dir, '.patchlens', 'runs', 'speaker.result.json')]);
  assert.ok(existed || !existsSync('/dev/.patchlens'), '/dev/.patchlens was created');
});

// Class 7: messages quoting file content or input escape control characters.

const ESCAPES = '\u001b]0;pwned\u0007\u001b[2J\u001b[31m\r\n\u202e\u0085';

const INJECTION_CASES: [what: string, prepare: (dir: string) => string[]][] = [
  ['tokenizer.json that is not JSON', () => [modelWith('inj-tok', 'tokenizer.json', (p) => writeFileSync(p, `{"model": ${ESCAPES}}`))]],
  [
    'tokenizer.json whose decoder type the tokenizer library quotes',
    () => [
      modelWith('inj-tok2', 'tokenizer.json', (p) =>
        writeFileSync(
          p,
          JSON.stringify({
            model: { type: 'BPE', vocab: { a: 0 }, merges: [] },
            normalizer: null,
            pre_tokenizer: null,
            post_processor: null,
            added_tokens: [],
            decoder: { type: `D${ESCAPES}` },
          }),
        ),
      ),
    ],
  ],
  ['tokenizer_config.json that is not JSON', () => [modelWith('inj-tokcfg', 'tokenizer_config.json', (p) => writeFileSync(p, `{"x": 1, "y": ${ESCAPES}}`))]],
  ['config.json that is not JSON', () => [modelWith('inj-cfg', 'config.json', (p) => writeFileSync(p, `{"model_type": ${ESCAPES}}`))]],
  ['a model path holding escape sequences', (dir) => [join(dir, `no-such${ESCAPES}model`)]],
];

for (const [what, prepare] of INJECTION_CASES) {
  test(`class 7: ${what}: the one line escapes every control character`, { skip }, async () => {
    const { dir } = caseDir(`inj-${what.replace(/[^a-z0-9]+/gi, '-')}`);
    const [modelDir] = prepare(dir);
    const spec = join(dir, 'inj.patch.json');
    writeFileSync(spec, specText(modelDir!));
    const r = await run(['run', spec, '--quiet', '--device', 'cpu']);
    assertOneLine(r, 1);
  });
}

test('class 7: a spec path and --model value with escape sequences are escaped in the message', { skip }, async () => {
  const { dir } = caseDir('inj-args');
  assertOneLine(await run(['run', join(dir, `missing${ESCAPES}.patch.json`), '--quiet']), 1, '\\u001b');
  assertOneLine(await run(['run', join(dir, 'spec.patch.json'), '--quiet', '--device', 'cpu', '--model', `./x${ESCAPES}`]), 1, '\\u001b');
});

// Item 9: empty means not given; which model was used is said.

test('item 9: --model "" means the spec\'s model', { skip }, async () => {
  const { spec } = caseDir('empty-model');
  const r = await run(['run', spec, '--quiet', '--device', 'cpu', '--model', '']);
  assert.equal(r.status, 0, r.stderr);
});

test('item 9: a local folder named like a hub id is used, and the first line and the result file say so', { skip }, async () => {
  const { dir, spec } = caseDir('shadow', 'gpt2');
  cpSync(model, join(dir, 'gpt2'), { recursive: true });
  const r = await run(['run', spec, '--device', 'cpu']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(lines(r.stderr)[0]!, new RegExp(`^load: loading gpt2 from the folder ${join(dir, 'gpt2')}, not the hub model 'gpt2'`));
  const result = JSON.parse(readFileSync(lines(r.stdout)[0]!, 'utf8')) as PatchResult;
  assert.deepEqual(result.model.location, { kind: 'folder', dir: join(dir, 'gpt2') });
});
