/**
 * `patchlens run` against a hostile hub and a tampered cache: a cache record that names files outside
 * the cache, symlinks planted in the cache, a hub that streams forever, drips, or never answers, a
 * download cancelled by Ctrl-C or SIGTERM, a cached file corrupted in place to the same size, and a
 * results folder that disappears while the model downloads. The built CLI, each run in its own process
 * against a local hub, bounded in time. Issue 14, classes 2 (the cache), 3, 4 and 5; issue 13, item 6.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { type CliOptions, type CliRun, startCli } from '../helpers/cli';
import { startHubServer, type HubServer } from '../helpers/hubServer';
import { assertOneLine, BUILT, lines } from './hostile';

const skip = !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)';

let work: string;
let hub: HubServer;
let weights: Buffer;
/** An endpoint where nothing listens: the hub is down. */
let down: string;

const SPEC = {
  name: 'tiny',
  model: 'org/tiny',
  metric: 'logit_diff',
  sweeps: ['resid_pre'],
  pairs: [{ clean_ids: [1, 2, 3], corrupted_ids: [1, 2, 4], answer_id: 5, wrong_id: 6 }],
};

before(async () => {
  work = makeTmpDir('hostile-hub');
  const root = join(work, 'hub-root');
  // About 60 KB of weights, served as an LFS file (sha256 on the redirect); no tokenizer (token-id prompts).
  writeRandomGpt2Checkpoint(join(root, 'org/tiny'), { nLayers: 1, nHeads: 2, dModel: 16, dVocab: 800, nCtx: 16, seed: 7 });
  weights = readFileSync(join(root, 'org/tiny/model.safetensors'));
  hub = await startHubServer(root);
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  down = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
});

after(() => hub.close());

interface Case {
  dir: string;
  spec: string;
  cache: string;
  /** The repo's folder in the cache. */
  repoDir: string;
}

function caseDir(name: string): Case {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const spec = join(dir, 'tiny.patch.json');
  writeFileSync(spec, JSON.stringify(SPEC));
  const cache = join(dir, 'cache');
  return { dir, spec, cache, repoDir: join(cache, 'hub', 'org--tiny', 'main') };
}

function start(c: Case, opts: { endpoint?: string; quiet?: boolean; extra?: string[] } & CliOptions = {}) {
  const args = [
    'run',
    c.spec,
    '--device',
    'cpu',
    '--cache',
    c.cache,
    '--hub-endpoint',
    opts.endpoint ?? hub.endpoint,
    ...(opts.quiet === false ? [] : ['--quiet']),
    ...(opts.extra ?? []),
  ];
  return startCli(args, { cwd: c.dir, timeoutMs: 60_000, ...opts });
}

const run = (c: Case, opts: Parameters<typeof start>[1] = {}): Promise<CliRun> => start(c, opts).done;

async function withHub<T>(options: HubServer['options'], body: () => Promise<T>): Promise<T> {
  hub.options = options;
  try {
    return await body();
  } finally {
    hub.options = {};
  }
}

/** Total bytes under a folder (what a download left on disk). */
function du(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).reduce((n, e) => n + (e.isFile() ? statSync(join(e.parentPath, e.name)).size : 0), 0);
}

/** Resolves once the held download has written its first bytes into the cache. */
async function downloadUnderWay(c: Case): Promise<void> {
  const partial = join(c.repoDir, 'model.safetensors.partial');
  for (let i = 0; i < 400 && !(existsSync(partial) && statSync(partial).size >= 20_000); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(existsSync(partial), 'the download started');
}

const partials = (c: Case) => (existsSync(c.repoDir) ? readdirSync(c.repoDir).filter((f) => f.endsWith('.partial')) : []);

// Class 3: names read back from the cache are trusted only when they are the repo's own, inside the cache.

const POISONED_NAMES = ['../../../../victim.txt', '/tmp/../VICTIM', 'config.json/../../../../../victim.txt', '..', 'model.safetensors\u0000x'];

test('class 3: a cache record naming files outside the cache is discarded; nothing outside is deleted', { skip }, async () => {
  for (const [i, style] of ['sizes (the old record)', 'sizes and hashes'].entries()) {
    const c = caseDir(`poison-${i}`);
    mkdirSync(c.repoDir, { recursive: true });
    const victim = join(c.dir, 'victim.txt');
    writeFileSync(victim, 'precious');
    const VICTIM = victim;
    const names = POISONED_NAMES.map((n) => n.replace('VICTIM', VICTIM.slice(1)));
    const entry = i === 0 ? 1 : { size: 1, sha256: '0'.repeat(64), mtimeMs: 0, ctimeMs: 0, ino: 0 };
    // Listed first, so that a reader that deletes files of the wrong size reaches them before anything else.
    const files = Object.fromEntries([...names.map((n) => [n, entry]), ['config.json', entry], ['model.safetensors', entry]]);
    writeFileSync(join(c.repoDir, '.complete'), JSON.stringify({ repo: 'org/tiny', revision: 'main', files }));
    // The wrong sizes would make a trusting reader delete every file the record names.
    const r = await run(c);
    assert.equal(r.status, 0, `${style}: ${r.stderr}`);
    assert.equal(readFileSync(victim, 'utf8'), 'precious', `${style}: the victim was touched`);
    assert.deepEqual(readFileSync(join(c.repoDir, 'model.safetensors')), weights);
  }
});

// Class 2 in the cache: symlinks planted where downloads go are replaced, never followed.

test('class 2: symlinks planted in the cache (partial files, final names, the record) are never written through', { skip }, async () => {
  const c = caseDir('cache-symlinks');
  mkdirSync(c.repoDir, { recursive: true });
  const victims = ['a', 'b', 'c', 'd', 'e'].map((v) => join(c.dir, `victim-${v}.txt`));
  for (const v of victims) writeFileSync(v, 'precious');
  const planted = ['config.json.partial', 'model.safetensors.partial', 'config.json', 'model.safetensors', '.complete'];
  planted.forEach((name, i) => symlinkSync(victims[i]!, join(c.repoDir, name)));
  const r = await run(c);
  assert.equal(r.status, 0, r.stderr);
  for (const v of victims) assert.equal(readFileSync(v, 'utf8'), 'precious', `${v} was written through a symlink`);
  assert.deepEqual(readFileSync(join(c.repoDir, 'model.safetensors')), weights);
});

// Class 4: downloads are bounded in size and time, cleaned up, and cancellable.

test('class 4: a hub that streams config.json forever: one line, exit 1, within seconds, nothing left on disk', { skip }, async (t) => {
  const c = caseDir('endless-config');
  const r = await withHub({ endless: 'config.json' }, () => run(c));
  assertOneLine(r, 1, 'config.json', 'more than 4 MiB');
  assert.deepEqual(partials(c), []);
  assert.ok(du(c.cache) < 1 << 20, `${du(c.cache)} bytes left in the cache`);
  t.diagnostic(`endless config.json: refused after ${r.ms} ms`);
});

test('class 4: weights streamed forever without a size: stopped at twice the memory limit, cleaned up', { skip }, async () => {
  const c = caseDir('endless-weights');
  const r = await withHub({ endless: 'model.safetensors' }, () => run(c, { env: { PATCHLENS_MAX_MODEL_BYTES: '3000000' } }));
  assertOneLine(r, 1, 'model.safetensors', 'more than 5.7 MiB', 'PATCHLENS_MAX_MODEL_BYTES');
  assert.deepEqual(partials(c), []);
});

test('class 4: a hub that drips a byte at a time: stalled, retried, one line, exit 1, no partial file left', { skip }, async (t) => {
  const c = caseDir('drip');
  const r = await withHub({ drip: { file: 'config.json', everyMs: 200 } }, () => run(c, { env: { PATCHLENS_DOWNLOAD_TIMEOUT: '1' } }));
  assertOneLine(r, 1, 'config.json', 'failed 4 times', 'stalled');
  assert.deepEqual(partials(c), []);
  t.diagnostic(`drip: gave up after ${r.ms} ms`);
});

test('class 4: a hub that never answers: stalled, one line, exit 1', { skip }, async () => {
  const c = caseDir('silent');
  const r = await withHub({ silent: 'model.safetensors' }, () => run(c, { env: { PATCHLENS_DOWNLOAD_TIMEOUT: '0.5' } }));
  assertOneLine(r, 1, 'model.safetensors', 'stalled');
});

for (const [signal, status] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`class 4 and 8: ${signal} during a download is a cancellation (exit ${status}, one line), and the next run resumes`, { skip }, async () => {
    const c = caseDir(`cancel-download-${signal}`);
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    hub.options = { hold: { file: 'model.safetensors', afterBytes: 20_000, release: held } };
    try {
      const p = start(c, { quiet: false });
      await downloadUnderWay(c);
      p.child.kill(signal);
      const r = await p.done;
      assert.ok(!r.timedOut, r.stderr);
      assert.equal(r.status, status, r.stderr);
      const last = lines(r.stderr).at(-1)!;
      assert.match(last, /^patchlens: cancelled before any sweep ran; nothing was written$/);
      assert.doesNotMatch(r.stderr, /internal error|AbortError|\bat \S+ \(/);
      assert.equal(r.stdout, '');
      assert.deepEqual(partials(c), ['model.safetensors.partial'], 'the verified-resumable partial file is kept');
    } finally {
      release();
      hub.options = {};
    }
    const start0 = hub.requests.length;
    const again = await run(c);
    assert.equal(again.status, 0, again.stderr);
    assert.ok(
      hub.requests.slice(start0).some((q) => q.range?.startsWith('bytes=') && q.range !== 'bytes=0-'),
      'the rerun resumed',
    );
    assert.deepEqual(readFileSync(join(c.repoDir, 'model.safetensors')), weights);
  });
}

// Issue 13, item 6: a cached file corrupted in place, to the same size, is caught before it is used.

test('a cached weights file corrupted in place to the same size is not used, even with its mtime put back; it is fetched again', { skip }, async () => {
  const c = caseDir('same-size');
  assert.equal((await run(c)).status, 0);
  const file = join(c.repoDir, 'model.safetensors');
  // Untouched, the cache serves the model without the hub.
  const start0 = hub.requests.length;
  assert.equal((await run(c, { endpoint: down })).status, 0);
  assert.equal(hub.requests.length, start0);
  for (const restoreMtime of [false, true]) {
    const st = statSync(file);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff;
    writeFileSync(file, bytes);
    if (restoreMtime) utimesSync(file, st.atime, st.mtime);
    assert.equal(statSync(file).size, st.size);
    // Offline, the damaged copy is refused rather than loaded.
    assertOneLine(await run(c, { endpoint: down }), 1, 'unreachable');
    const online = await run(c);
    assert.equal(online.status, 0, online.stderr);
    assert.deepEqual(readFileSync(file), weights, `restored (mtime put back: ${restoreMtime})`);
  }
});

// Class 5: the results folder becomes unwritable after the check, while the model downloads.

test('class 5: the results folder is gone by the time the sweeps end: the result goes to a temporary folder, its path printed', { skip }, async () => {
  const c = caseDir('fallback');
  const out = join(c.dir, 'out');
  const tmp = join(c.dir, 'tmp');
  mkdirSync(tmp);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  hub.options = { hold: { file: 'model.safetensors', afterBytes: 20_000, release: held } };
  let r: CliRun;
  try {
    const p = start(c, { quiet: false, extra: ['--out', out], env: { TMPDIR: tmp } });
    await downloadUnderWay(c);
    rmSync(out, { recursive: true, force: true });
    writeFileSync(out, 'a file where the folder was');
    release();
    r = await p.done;
  } finally {
    release();
    hub.options = {};
  }
  assert.equal(r.status, 1, r.stderr);
  const [path] = lines(r.stdout);
  assert.ok(path?.startsWith(tmp), `the result was written under TMPDIR: ${r.stdout}`);
  assert.equal((JSON.parse(readFileSync(path!, 'utf8')) as PatchResult).status, 'done');
  const last = lines(r.stderr).at(-1)!;
  assert.ok(last.startsWith(`patchlens: cannot write the result to ${out} (`) && last.includes(`it was written to ${path} instead`), last);
});
