import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { readSafetensors, writeSafetensors } from '../../src/engine/model/safetensors';
import { resolveModelDir, type HubOptions } from '../../src/engine/model/hub';
import { UserError } from '../../src/common/userError';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { startHubServer, type HubServer } from '../helpers/hubServer';

let root: string;
let hub: HubServer;
let modelBytes: Buffer;

before(async () => {
  root = makeTmpDir('hub-root');
  // ~700 KB of weights: enough for many chunks, so interruptions land mid-file.
  const ck = { nLayers: 2, nHeads: 4, dModel: 64, dVocab: 1500, nCtx: 32, seed: 3 };
  for (const repo of ['openai-community/gpt2', 'org/tiny', 'org/notok']) writeRandomGpt2Checkpoint(join(root, repo), ck);
  for (const repo of ['openai-community/gpt2', 'org/tiny']) {
    writeFileSync(join(root, repo, 'tokenizer.json'), JSON.stringify({ version: '1.0', fake: 'x'.repeat(3000) }));
    writeFileSync(join(root, repo, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'GPT2Tokenizer' }));
  }
  mkdirSync(join(root, 'org/mamba'), { recursive: true });
  writeFileSync(join(root, 'org/mamba/config.json'), JSON.stringify({ model_type: 'mamba', architectures: ['MambaForCausalLM'] }));
  writeFileSync(join(root, 'org/mamba/model.safetensors'), Buffer.alloc(4096));
  modelBytes = readFileSync(join(root, 'org/tiny/model.safetensors'));
  // A sharded repo: the same tensors in two files and an index, as save_pretrained writes large models.
  writeRandomGpt2Checkpoint(join(root, 'org/sharded'), ck);
  const all = readSafetensors(join(root, 'org/sharded/model.safetensors'));
  rmSync(join(root, 'org/sharded/model.safetensors'));
  const names = [...all.keys()].sort();
  const shards = [names.slice(0, 10), names.slice(10)];
  const weightMap: Record<string, string> = {};
  shards.forEach((part, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(root, 'org/sharded', file), Object.fromEntries(part.map((n) => [n, all.get(n)!])), undefined, 'BF16');
    for (const n of part) weightMap[n] = file;
  });
  writeFileSync(join(root, 'org/sharded/model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  hub = await startHubServer(root);
});

after(() => hub.close());

function opts(cacheDir: string, extra: HubOptions = {}): HubOptions {
  return { endpoint: hub.endpoint, cacheDir, ...extra };
}

async function expectUserError(p: Promise<unknown>, ...parts: string[]): Promise<UserError> {
  let err: unknown;
  await p.then(
    () => assert.fail('expected a UserError'),
    (e: unknown) => (err = e),
  );
  assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
  assert.ok(!err.message.includes('\n'), 'a UserError message is one line');
  for (const s of parts) assert.ok(err.message.includes(s), `message '${err.message}' should mention '${s}'`);
  return err;
}

const files = (dir: string) => readdirSync(dir).sort();

test('downloads a model into the cache with progress, verified, loadable', async () => {
  const cache = makeTmpDir('hub-cache');
  const progress: { file: string; received: number; total: number | undefined }[] = [];
  const start = hub.requests.length;
  const dir = await resolveModelDir('org/tiny', opts(cache, { onProgress: (p) => progress.push({ ...p }) }));
  assert.equal(dir, join(cache, 'org--tiny', 'main'));
  assert.deepEqual(files(dir), ['.complete', 'config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    assert.deepEqual(readFileSync(join(dir, f)), readFileSync(join(root, 'org/tiny', f)), f);
  }
  const mp = progress.filter((p) => p.file === 'model.safetensors');
  assert.ok(mp.length > 3, `progress per chunk (got ${mp.length} events)`);
  mp.forEach((p, i) => {
    assert.equal(p.total, modelBytes.length);
    if (i > 0) assert.ok(p.received >= mp[i - 1]!.received, 'received never goes back');
  });
  assert.equal(mp.at(-1)!.received, modelBytes.length);
  // The large file came the way the real hub sends it: a redirect carrying its sha256, then the CDN.
  const reqs = hub.requests.slice(start).map((r) => `${r.status} ${r.path}`);
  assert.ok(reqs.includes('302 /org/tiny/resolve/main/model.safetensors'), reqs.join(', '));
  assert.ok(reqs.includes('200 /cdn/org/tiny/model.safetensors'), reqs.join(', '));
  const marker = JSON.parse(readFileSync(join(dir, '.complete'), 'utf8'));
  assert.equal(marker.files['model.safetensors'].size, modelBytes.length);
  assert.equal(marker.files['model.safetensors'].sha256, createHash('sha256').update(modelBytes).digest('hex'));
  assert.equal(loadCheckpoint(dir).config.dVocab, 1500);
});

test('a sharded repo: the index, then every shard it names; the model loads from the shards, its dtype recorded', async () => {
  const cache = makeTmpDir('hub-sharded');
  const start = hub.requests.length;
  const dir = await resolveModelDir('org/sharded', opts(cache));
  assert.deepEqual(files(dir), ['.complete', 'config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
  const reqs = hub.requests.slice(start).map((r) => `${r.status} ${r.path}`);
  assert.ok(reqs.includes('404 /org/sharded/resolve/main/model.safetensors'), reqs.join(', '));
  const { config, weights } = loadCheckpoint(dir);
  assert.equal(config.weightsDtype, 'BF16');
  assert.equal(weights.blocks.length, 2);
  // A second call is served from the cache.
  const again = hub.requests.length;
  assert.equal(await resolveModelDir('org/sharded', opts(cache)), dir);
  assert.equal(hub.requests.length, again);
});

test('a complete cached model is reused with no network at all', async () => {
  const cache = makeTmpDir('hub-reuse');
  const dir = await resolveModelDir('org/tiny', opts(cache));
  const before = hub.requests.length;
  let calls = 0;
  const again = await resolveModelDir('org/tiny', opts(cache, { onProgress: () => calls++ }));
  assert.equal(again, dir);
  assert.equal(hub.requests.length, before, 'no request on reuse');
  assert.equal(calls, 0);
  // Works with the hub gone, too.
  const offline = await resolveModelDir('org/tiny', { endpoint: 'http://127.0.0.1:1', cacheDir: cache });
  assert.equal(offline, dir);

  // A cached file whose size no longer matches its marker is not used: it is fetched again.
  writeFileSync(join(dir, 'model.safetensors'), modelBytes.subarray(0, 1000));
  const n = hub.requests.length;
  await resolveModelDir('org/tiny', opts(cache));
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), modelBytes);
  const fetched = hub.requests.slice(n).map((r) => r.path);
  assert.ok(fetched.some((p) => p.endsWith('model.safetensors')));
  assert.ok(!fetched.some((p) => p.endsWith('config.json')), 'verified files are kept');
});

test('a cache record of an older format (sizes only) is not trusted: small files are fetched again, the weights re-verified against the hub, not re-downloaded', async () => {
  const cache = makeTmpDir('hub-old-marker');
  const dir = await resolveModelDir('org/tiny', opts(cache));
  const sizes = Object.fromEntries(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'].map((f) => [f, readFileSync(join(dir, f)).length]));
  writeFileSync(join(dir, '.complete'), JSON.stringify({ repo: 'org/tiny', revision: 'main', files: sizes }));
  const start = hub.requests.length;
  await resolveModelDir('org/tiny', opts(cache));
  const reqs = hub.requests.slice(start);
  assert.ok(
    reqs.some((r) => r.path.endsWith('/config.json') && r.status === 200),
    'config.json fetched again',
  );
  // The weights went back to being a partial file: the hub's answer (nothing left to send, and its sha256) verifies them.
  assert.ok(
    reqs.some((r) => r.path.endsWith('model.safetensors') && r.status === 416),
    reqs.map((r) => `${r.status} ${r.path}`).join(', '),
  );
  assert.ok(!reqs.some((r) => r.path.endsWith('model.safetensors') && r.status === 200), 'the weights were not downloaded again');
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), modelBytes);
  assert.equal(typeof JSON.parse(readFileSync(join(dir, '.complete'), 'utf8')).files['model.safetensors'].sha256, 'string');
});

test('an interrupted transfer resumes with a Range request and ends byte-identical', async () => {
  const cache = makeTmpDir('hub-resume');
  hub.options = { fail: { file: 'model.safetensors', afterBytes: 200_000, times: 2 } };
  try {
    const start = hub.requests.length;
    const dir = await resolveModelDir('org/tiny', opts(cache));
    assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), modelBytes);
    assert.ok(!files(dir).some((f) => f.endsWith('.partial')));
    const ranged = hub.requests.slice(start).filter((r) => r.range !== undefined && r.path.startsWith('/cdn/'));
    assert.deepEqual(
      ranged.map((r) => [r.range, r.status]),
      [
        ['bytes=200000-', 206],
        ['bytes=400000-', 206],
      ],
    );
  } finally {
    hub.options = {};
  }
});

test('a server that ignores Range restarts the file from scratch (200) and still ends identical', async () => {
  const cache = makeTmpDir('hub-norange');
  hub.options = { fail: { file: 'model.safetensors', afterBytes: 300_000 }, noRange: true };
  try {
    const dir = await resolveModelDir('org/tiny', opts(cache));
    assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), modelBytes);
  } finally {
    hub.options = {};
  }
});

test('a transfer that keeps failing is a UserError, leaves no usable model, and a rerun resumes', async () => {
  const cache = makeTmpDir('hub-persist');
  hub.options = { fail: { file: 'model.safetensors', afterBytes: 50_000, times: Infinity } };
  const dir = join(cache, 'org--tiny', 'main');
  try {
    await expectUserError(resolveModelDir('org/tiny', opts(cache)), 'model.safetensors', "'org/tiny'", 'failed 4 times', 'rerun');
  } finally {
    hub.options = {};
  }
  assert.ok(!existsSync(join(dir, 'model.safetensors')), 'no model file under its final name');
  assert.ok(!existsSync(join(dir, '.complete')));
  assert.equal(readFileSync(join(dir, 'model.safetensors.partial')).length, 200_000, '4 attempts x 50000 bytes appended');
  assert.throws(() => loadCheckpoint(dir), UserError, 'the half-downloaded folder is not loadable');

  const start = hub.requests.length;
  await resolveModelDir('org/tiny', opts(cache));
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), modelBytes);
  const ranges = hub.requests
    .slice(start)
    .filter((r) => r.range)
    .map((r) => r.range);
  assert.deepEqual(ranges, ['bytes=200000-', 'bytes=200000-'], 'the rerun resumed (hub hop and CDN hop)');
});

test('a checksum mismatch is never accepted', async () => {
  const cache = makeTmpDir('hub-sha');
  // Only model.safetensors is served as an LFS file here, so it is the one that fails.
  hub.options = { wrongSha: true, lfsThreshold: 100_000 };
  try {
    await expectUserError(resolveModelDir('org/tiny', opts(cache)), 'model.safetensors', 'sha256 mismatch');
  } finally {
    hub.options = {};
  }
  const dir = join(cache, 'org--tiny', 'main');
  assert.ok(!existsSync(join(dir, 'model.safetensors')));
  assert.ok(!existsSync(join(dir, 'model.safetensors.partial')));
  assert.ok(!existsSync(join(dir, '.complete')));
});

test('a file shorter than the hub says it is is never accepted', async () => {
  const cache = makeTmpDir('hub-short');
  // Chunked, so the transfer itself looks complete; only x-linked-size tells it is 10 bytes short.
  hub.options = { chunked: true, linkedSizeDelta: 10, lfsThreshold: 100_000 };
  try {
    await expectUserError(resolveModelDir('org/tiny', opts(cache)), 'model.safetensors', 'failed 4 times');
  } finally {
    hub.options = {};
  }
  const dir = join(cache, 'org--tiny', 'main');
  assert.ok(!existsSync(join(dir, 'model.safetensors')));
  assert.ok(!existsSync(join(dir, '.complete')));
});

test('optional tokenizer files may be missing (404)', async () => {
  const cache = makeTmpDir('hub-notok');
  const dir = await resolveModelDir('org/notok', opts(cache));
  assert.deepEqual(files(dir), ['.complete', 'config.json', 'model.safetensors']);
});

test('an unknown model is a clear UserError', async () => {
  const cache = makeTmpDir('hub-404');
  await expectUserError(resolveModelDir('org/nothing', opts(cache)), "model 'org/nothing' not found on the hub at", hub.endpoint, 'local folder');
  assert.ok(!existsSync(join(cache, 'org--nothing', 'main', '.complete')));
  await expectUserError(resolveModelDir('../../no-such-model-dir', opts(cache)), "'../../no-such-model-dir'", 'neither an existing folder');
});

test('a model of an unsupported family is refused before its weights are downloaded', async () => {
  const cache = makeTmpDir('hub-mamba');
  const start = hub.requests.length;
  await expectUserError(resolveModelDir('org/mamba', opts(cache)), "unknown architecture (model_type 'mamba')");
  assert.ok(!hub.requests.slice(start).some((r) => r.path.endsWith('model.safetensors')));
});

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

test('an unreachable hub is a clear UserError that says how to work offline', async () => {
  const cache = makeTmpDir('hub-down');
  await expectUserError(
    resolveModelDir('org/tiny', { endpoint: `http://127.0.0.1:${await closedPort()}`, cacheDir: cache }),
    'unreachable',
    'ECONNREFUSED',
    'local model folder',
    'HF_ENDPOINT',
  );
});

test("aliases: 'gpt2' is fetched from openai-community/gpt2", async () => {
  const cache = makeTmpDir('hub-alias');
  const start = hub.requests.length;
  const dir = await resolveModelDir('gpt2', opts(cache));
  assert.equal(dir, join(cache, 'openai-community--gpt2', 'main'));
  assert.equal(hub.requests[start]!.path, '/openai-community/gpt2/resolve/main/config.json');
  assert.deepEqual(readFileSync(join(dir, 'model.safetensors')), readFileSync(join(root, 'openai-community/gpt2/model.safetensors')));
});

test('an existing local folder is used as is, relative to baseDir', async () => {
  const base = makeTmpDir('hub-local');
  writeRandomGpt2Checkpoint(join(base, 'gpt2'), { nLayers: 1, nHeads: 1, dModel: 4, dVocab: 10, nCtx: 4, seed: 1 });
  const start = hub.requests.length;
  // A folder named like a hub alias wins over the hub.
  assert.equal(await resolveModelDir('gpt2', { ...opts(base), baseDir: base }), join(base, 'gpt2'));
  assert.equal(await resolveModelDir(relative(process.cwd(), join(base, 'gpt2'))), join(base, 'gpt2'));
  await expectUserError(resolveModelDir('gpt2/config.json', { baseDir: base }), 'is a file', 'folder');
  assert.equal(hub.requests.length, start);
});

test('an abort signal stops the download; the partial file is kept for a resume', async () => {
  const cache = makeTmpDir('hub-abort');
  const ac = new AbortController();
  const p = resolveModelDir('org/tiny', opts(cache, { signal: ac.signal, onProgress: (x) => x.file === 'model.safetensors' && x.received > 100_000 && ac.abort() }));
  await assert.rejects(p, (e: unknown) => (e as Error).name === 'AbortError');
  const dir = join(cache, 'org--tiny', 'main');
  assert.ok(!existsSync(join(dir, '.complete')));
  assert.ok(!existsSync(join(dir, 'model.safetensors')));
  const dir2 = await resolveModelDir('org/tiny', opts(cache));
  assert.deepEqual(readFileSync(join(dir2, 'model.safetensors')), modelBytes);
});
