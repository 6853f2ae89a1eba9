/**
 * Downloads, from the loader's side: whatever happens to a hub download (cut connections, a wrong
 * checksum, a short file, the engine killed mid-transfer, a partial file damaged while it waited),
 * loading the model afterwards never uses a partial or unverified file. It either fails with a
 * UserError or loads the exact bytes the hub serves.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { ModelCache } from '../../src/engine/modelLoader';
import type { EngineSettings } from '../../src/protocol/engineRpc';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { type HubServerOptions, startHubServer, type HubServer } from '../helpers/hubServer';
import { userErrorProblem } from './fuzz';

const REPO = resolve(__dirname, '..', '..');
let root: string;
let hub: HubServer;
let modelBytes: Buffer;
/** An endpoint where nothing listens (a port that was just freed): the hub is down. */
let DOWN: string;

before(async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  DOWN = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
  root = makeTmpDir('dl-root');
  // About 800 KB of weights: many chunks, so faults land mid-file.
  writeRandomGpt2Checkpoint(join(root, 'org/tiny'), { nLayers: 2, nHeads: 4, dModel: 64, dVocab: 1500, nCtx: 32, seed: 31 });
  modelBytes = readFileSync(join(root, 'org/tiny/model.safetensors'));
  hub = await startHubServer(root);
});

after(() => hub.close());

const settings = (cacheDir: string, endpoint = hub.endpoint): EngineSettings => ({ cacheDir, hubEndpoint: endpoint, device: 'cpu' });
const modelDir = (cacheDir: string) => join(cacheDir, 'hub', 'org--tiny', 'main');

async function expectUserError(p: Promise<unknown>, ...parts: string[]): Promise<string> {
  let error: unknown;
  await p.then(
    () => assert.fail(`expected a UserError (${parts.join(', ')})`),
    (e: unknown) => (error = e),
  );
  const problem = userErrorProblem(error);
  assert.equal(problem, undefined, problem);
  const msg = (error as Error).message;
  for (const s of parts) assert.ok(msg.includes(s), `'${msg}' should mention '${s}'`);
  return msg;
}

/**
 * After a failed download: the folder holds no model under its final name and no completion marker,
 * the checkpoint loader refuses it, and the engine's model cache refuses it with the hub unreachable.
 */
async function assertNothingLoadable(cacheDir: string): Promise<void> {
  const dir = modelDir(cacheDir);
  assert.ok(!existsSync(join(dir, 'model.safetensors')), 'no model file under its final name');
  assert.ok(!existsSync(join(dir, '.complete')), 'no completion marker');
  await expectUserError(
    Promise.resolve().then(() => loadCheckpoint(dir)),
    'model.safetensors',
    'does not exist',
  );
  await expectUserError(new ModelCache().get({ source: 'org/tiny', settings: settings(cacheDir, DOWN) }), 'unreachable');
}

/** Then, with the hub healthy, the engine loads the model, and its weights file is the hub's exactly. */
async function assertRecovers(cacheDir: string): Promise<void> {
  hub.options = {};
  const cache = new ModelCache();
  const loaded = await cache.get({ source: 'org/tiny', settings: settings(cacheDir) });
  assert.equal(loaded.model.cfg.dVocab, 1500);
  assert.deepEqual(readFileSync(join(loaded.dir, 'model.safetensors')), modelBytes);
  assert.ok(!readdirSync(loaded.dir).some((f) => f.includes('.partial') || f.includes('.tmp')), readdirSync(loaded.dir).join(', '));
  await cache.release();
}

const FAULTS: [string, HubServerOptions, string[]][] = [
  ['the connection drops after 50 KB, every time', { fail: { file: 'model.safetensors', afterBytes: 50_000, times: Infinity } }, ['failed 4 times', 'rerun']],
  ['the connection drops before any byte, every time', { fail: { file: 'model.safetensors', afterBytes: 0, times: Infinity } }, ['failed 4 times']],
  ['the hub announces a wrong sha256', { wrongSha: true, lfsThreshold: 100_000 }, ['sha256 mismatch']],
  ['the file is 10 bytes shorter than the hub says (chunked)', { chunked: true, linkedSizeDelta: 10, lfsThreshold: 100_000 }, ['failed 4 times']],
  ['the file is 10 bytes longer than the hub says', { linkedSizeDelta: -10, lfsThreshold: 100_000 }, ['failed 4 times']],
  ['config.json is cut short, every time', { fail: { file: 'config.json', afterBytes: 100, times: Infinity } }, ['config.json', 'failed 4 times']],
];

for (const [what, fault, parts] of FAULTS) {
  test(`download fault: ${what} -> a UserError, nothing loadable, then a clean load`, async () => {
    const cacheDir = makeTmpDir('dl-fault');
    hub.options = fault;
    try {
      await expectUserError(new ModelCache().get({ source: 'org/tiny', settings: settings(cacheDir) }), ...parts);
    } finally {
      hub.options = {};
    }
    await assertNothingLoadable(cacheDir);
    await assertRecovers(cacheDir);
  });
}

test('the engine killed (SIGKILL) in the middle of a download: the partial file is never loaded, and the next run resumes it', async () => {
  const cacheDir = makeTmpDir('dl-kill');
  const dir = modelDir(cacheDir);
  const partial = join(dir, 'model.safetensors.partial');
  // Every transfer stops after 300 KB: the worker is killed while it is retrying.
  hub.options = { fail: { file: 'model.safetensors', afterBytes: 300_000, times: Infinity } };
  const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'downloadWorker.ts'), 'org/tiny', hub.endpoint, join(cacheDir, 'hub')], {
    cwd: REPO,
    stdio: 'ignore',
  });
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on('exit', (_code, signal) => res(signal)));
  for (let i = 0; i < 600 && !(existsSync(partial) && statSync(partial).size >= 300_000); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(existsSync(partial) && statSync(partial).size >= 300_000, 'the worker got 300 KB in');
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  hub.options = {};
  await assertNothingLoadable(cacheDir);
  const got = statSync(partial).size;
  const start = hub.requests.length;
  await assertRecovers(cacheDir);
  const ranges = hub.requests
    .slice(start)
    .filter((r) => r.range)
    .map((r) => r.range);
  assert.ok(ranges.includes(`bytes=${got}-`), `the next run resumed at ${got} (ranges: ${ranges.join(', ')})`);
});

test('a partial file damaged while the engine was not running is caught by the checksum, and the download starts over', async () => {
  const cacheDir = makeTmpDir('dl-damaged');
  const dir = modelDir(cacheDir);
  hub.options = { fail: { file: 'model.safetensors', afterBytes: 100_000, times: Infinity } };
  try {
    await expectUserError(new ModelCache().get({ source: 'org/tiny', settings: settings(cacheDir) }), 'failed 4 times');
  } finally {
    hub.options = {};
  }
  const partial = join(dir, 'model.safetensors.partial');
  const bytes = readFileSync(partial);
  bytes.fill(0x55, 1000, 2000);
  writeFileSync(partial, bytes);
  await assertNothingLoadable(cacheDir);
  await assertRecovers(cacheDir);
});

test('a cached model whose weights file was cut short after download is fetched again, not loaded', async () => {
  const cacheDir = makeTmpDir('dl-cut-cache');
  await assertRecovers(cacheDir);
  const st = join(modelDir(cacheDir), 'model.safetensors');
  writeFileSync(st, modelBytes.subarray(0, 123_456));
  // Offline, the damaged cache is not used.
  await expectUserError(new ModelCache().get({ source: 'org/tiny', settings: settings(cacheDir, DOWN) }), 'unreachable');
  await assertRecovers(cacheDir);
});
