import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type PatchResult, RESULT_FORMAT } from '../../src/protocol/result';
import { readResultFile } from '../../src/common/resultFile';
import { findResultSince, runContents, RunHistory, writeFailedResult } from '../../src/extension/runHistory';
import { engineSettings, parseSettings, resultsFolderFor } from '../../src/extension/settings';
import { makeTmpDir } from '../helpers/checkpoint';

function result(name: string, status: PatchResult['status'], createdAt: string): PatchResult {
  return {
    format: RESULT_FORMAT,
    name,
    status,
    createdAt,
    spec: { model: 'gpt2', metric: 'logit_diff', sweeps: ['resid_pre'] },
    source: '/ws/a.patch.json',
    model: { id: 'gpt2', config: { nLayers: 1, nHeads: 1, dModel: 4, dHead: 4, dMlp: 16, dVocab: 10, nCtx: 8 }, dtype: 'float32', provider: 'cpu', weightProcessing: 'none' },
    engine: { version: '0.1.0', mode: 'fast', seconds: 1 },
    metric: 'logit_diff',
    tokens: [],
    sweeps: { resid_pre: { shape: [1, 2], axes: ['layer', 'pos'], values: [0.5, -0.5] } },
  };
}

test('listing a results folder: newest first, corrupt and foreign files listed as unreadable, in-progress files skipped', () => {
  const dir = makeTmpDir('runs-list');
  writeFileSync(join(dir, 'old.result.json'), JSON.stringify(result('old', 'done', '2025-01-01T00:00:00Z')));
  writeFileSync(join(dir, 'new.result.json'), JSON.stringify(result('new', 'cancelled', '2025-06-01T00:00:00Z')));
  writeFileSync(join(dir, 'broken.result.json'), '{"format": "patchlens.result/1", "name": ');
  writeFileSync(join(dir, 'foreign.result.json'), JSON.stringify({ hello: 'world' }));
  writeFileSync(
    join(dir, 'bad-shape.result.json'),
    JSON.stringify({ ...result('bad', 'done', '2025-02-01T00:00:00Z'), sweeps: { resid_pre: { shape: [2, 2], axes: ['layer', 'pos'], values: [1] } } }),
  );
  writeFileSync(join(dir, 'running.result.json'), '');
  writeFileSync(join(dir, 'notes.txt'), 'not a result');
  mkdirSync(join(dir, 'sub.result.json'));
  const history = new RunHistory();
  const entries = history.list(dir);
  const results = entries.filter((e) => e.kind === 'result');
  assert.deepEqual(
    results.map((e) => e.kind === 'result' && [e.name, e.status, e.model, e.sweeps]),
    [
      ['new', 'cancelled', 'gpt2', ['resid_pre']],
      ['old', 'done', 'gpt2', ['resid_pre']],
    ],
  );
  const unreadable = Object.fromEntries(entries.filter((e) => e.kind === 'unreadable').map((e) => [e.path.split('/').pop(), e.kind === 'unreadable' ? e.reason : '']));
  assert.deepEqual(Object.keys(unreadable).sort(), ['bad-shape.result.json', 'broken.result.json', 'foreign.result.json']);
  assert.match(unreadable['broken.result.json']!, /not valid JSON/);
  assert.match(unreadable['foreign.result.json']!, /not a PatchLens result/);
  assert.match(unreadable['bad-shape.result.json']!, /1 values for shape \[2, 2\]/);
  // A rewritten file is read again, not served from the cache.
  writeFileSync(join(dir, 'broken.result.json'), JSON.stringify(result('fixed', 'failed', '2025-07-01T00:00:00Z')));
  utimesSync(join(dir, 'broken.result.json'), new Date(), new Date(Date.now() + 5000));
  const again = history.list(dir);
  assert.ok(again.some((e) => e.kind === 'result' && e.name === 'fixed' && e.status === 'failed'));
  assert.ok(!again.some((e) => e.kind === 'unreadable' && e.path.endsWith('broken.result.json')));
  assert.deepEqual(history.list(join(dir, 'missing')), []);
});

test('readResultFile gives one-line reasons', () => {
  const dir = makeTmpDir('runs-read');
  assert.throws(() => readResultFile(join(dir, 'nope.result.json')), /cannot read .*ENOENT/);
  writeFileSync(join(dir, 'x.result.json'), '[]');
  assert.throws(() => readResultFile(join(dir, 'x.result.json')), /not a result PatchLens can show: not a JSON object/);
});

test('a crashed run gets a failed record, unless its result was written before the crash', () => {
  const dir = makeTmpDir('runs-failed');
  const since = Date.now();
  assert.equal(findResultSince(dir, 'ioi', since), undefined);
  const path = writeFailedResult({
    outDir: dir,
    name: 'ioi',
    spec: { model: 'gpt2', metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: 'a', corrupted: 'b', answer: ' x', wrong: ' y' }] },
    source: '/ws/ioi.patch.json',
    modelId: 'gpt2',
    message: 'the engine process was killed (SIGKILL) during the run',
    startedAt: since,
  });
  assert.equal(path, join(dir, 'ioi.result.json'));
  const r = readResultFile(path);
  assert.equal(r.status, 'failed');
  assert.equal(r.message, 'the engine process was killed (SIGKILL) during the run');
  assert.deepEqual(r.sweeps, {});
  // The engine died before it loaded the model: its config and provider are unknown, not zeros.
  assert.deepEqual(r.model, { id: 'gpt2', dtype: 'float32', weightProcessing: 'none' });
  assert.equal(findResultSince(dir, 'ioi', since), path);
  // An older run of the same name does not count.
  assert.equal(findResultSince(dir, 'ioi', since + 60_000), undefined);
  // The next record never overwrites the first.
  assert.equal(writeFailedResult({ outDir: dir, name: 'ioi', spec: r.spec, modelId: 'gpt2', message: 'again', startedAt: Date.now() }), join(dir, 'ioi-2.result.json'));
  assert.equal(JSON.parse(readFileSync(path, 'utf8')).message, r.message);
  // The view lists failure records like any run.
  assert.deepEqual(
    new RunHistory().list(dir).map((e) => e.kind === 'result' && e.status),
    ['failed', 'failed'],
  );
});

test('settings: defaults, bad values fall back, relative folders anchor at the workspace', () => {
  const s = parseSettings(() => undefined);
  assert.deepEqual(s, {
    device: 'auto',
    memoryBudgetMiB: 1024,
    resultsFolder: '.patchlens/runs',
    mode: 'fast',
    selectionSweeps: ['resid_pre', 'attn_head_out_all_pos', 'block_every'],
  });
  const values: Record<string, unknown> = {
    model: ' gpt2 ',
    device: 'tpu',
    memoryBudgetMiB: -5,
    mode: 'naive',
    cacheDir: 'cache',
    hubEndpoint: '',
    selectionSweeps: ['mlp_out', 'nope', 'mlp_out'],
    resultsFolder: '/abs/runs',
  };
  const t = parseSettings((k) => values[k]);
  assert.equal(t.model, 'gpt2');
  assert.equal(t.device, 'auto');
  assert.equal(t.memoryBudgetMiB, 1024);
  assert.equal(t.mode, 'naive');
  assert.deepEqual(t.selectionSweeps, ['mlp_out']);
  assert.equal(t.hubEndpoint, undefined);
  assert.deepEqual(engineSettings(t, '/ws'), { device: 'auto', mode: 'naive', memoryBudgetMiB: 1024, cacheDir: '/ws/cache' });
  assert.equal(resultsFolderFor(t, '/ws', '/ws/specs'), '/abs/runs');
  assert.equal(resultsFolderFor(s, '/ws', '/ws/specs'), '/ws/.patchlens/runs');
  assert.equal(resultsFolderFor(s, undefined, '/tmp/specs'), '/tmp/specs/.patchlens/runs');
});

test("a run's line in the runs view names its sweep or counts its sweeps, and counts its patch sets", () => {
  const dir = makeTmpDir('runs-contents');
  const sets = [
    { name: 'mover heads', components: ['L1H0'], value: 0.5 },
    { name: 'all', components: ['L0H0', 'L1H0'], value: 0.9 },
  ];
  writeFileSync(join(dir, 'sets.result.json'), JSON.stringify({ ...result('sets', 'done', '2025-01-01T00:00:00Z'), sweeps: {}, patchSets: sets }));
  const [entry] = new RunHistory().list(dir);
  assert.ok(entry?.kind === 'result');
  assert.equal(entry.patchSets, 2);
  assert.equal(runContents(entry), '2 patch sets');
  assert.equal(runContents({ sweeps: ['resid_pre'], patchSets: 0 }), 'resid_pre');
  assert.equal(runContents({ sweeps: ['resid_pre', 'attn_out'], patchSets: 1 }), '2 sweeps + 1 patch set');
  assert.equal(runContents({ sweeps: [], patchSets: 0 }), '');
});
