import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { ProgressParams } from '../../src/protocol/engineRpc';
import type { PatchResult } from '../../src/protocol/result';
import { EngineClient, EngineCrashedError, engineInspectArgv, EngineUserError } from '../../src/extension/engineClient';
import { readSelection, selectionSource } from '../../src/extension/promptSources';
import { RunDispatcher, type RunUi } from '../../src/extension/runDispatcher';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';

// The real worker, from source through tsx, so this runs without a build.
const REPO = resolve(__dirname, '../..');
const WORKER = join(REPO, 'src/engine/worker.ts');

let dir: string;
let client: EngineClient;
const logs: string[] = [];

function newClient(workerPath = WORKER): EngineClient {
  return new EngineClient({ workerPath, execArgv: ['--import', 'tsx'], cwd: REPO, log: (l) => logs.push(l) });
}

before(() => {
  dir = makeTmpDir('engine-client');
  writeRandomGpt2Checkpoint(join(dir, 'model'), { nLayers: 2, nHeads: 2, dModel: 16, dVocab: 50257, nCtx: 64, seed: 3, withTokenizer: true });
  writeFileSync(
    join(dir, 'speaker.patch.json'),
    JSON.stringify({
      name: 'speaker',
      model: './model',
      metric: 'logit_diff',
      sweeps: ['resid_pre', 'attn_head_out_all_pos'],
      pairs: [{ clean: 'When Mary and John went out, John gave it to', corrupted: 'When Mary and John went out, Mary gave it to', answer: ' Mary', wrong: ' John' }],
    }),
  );
  client = newClient();
});

after(async () => {
  await client.dispose();
});

test('tokenize returns ids and token strings from the model folder', async () => {
  const r = await client.tokenize({ model: './model', baseDir: dir, texts: [' Alice', 'Hello world'] });
  assert.deepEqual(r.tokens[0]!.ids, [14862]);
  assert.deepEqual(r.tokens[0]!.strings, [' Alice']);
  assert.deepEqual(r.tokens[1]!.strings, ['Hello', ' world']);
});

test("the engine lists the families it reads with their hub examples, for Select Model (the extension can't import the registry)", async () => {
  const families = await client.modelFamilies();
  const { ARCHITECTURES } = await import('../../src/engine/architectures/registry');
  assert.deepEqual(
    families.map((f) => f.id),
    ARCHITECTURES.map((a) => a.id),
  );
  const examples = families.flatMap((f) => f.examples.map((e) => e.id));
  for (const id of [
    'gpt2',
    'meta-llama/Llama-3.2-1B',
    'Qwen/Qwen2.5-0.5B',
    'HuggingFaceTB/SmolLM2-135M',
    'TinyLlama/TinyLlama-1.1B-Chat-v1.0',
    'google/gemma-2-2b',
    'google/gemma-3-1b-pt',
    'Qwen/Qwen3-0.6B',
    'allenai/OLMo-2-0425-1B',
  ]) {
    assert.ok(examples.includes(id), id);
  }
  assert.ok(families.every((f) => f.label.length > 0 && f.examples.every((e) => e.description.length > 0)));
});

test('a run reports progress and writes its result', async () => {
  const progress: ProgressParams[] = [];
  const outcome = await client.run({ runId: 'r1', specFile: join(dir, 'speaker.patch.json'), device: 'cpu', outDir: join(dir, 'runs') }, (p) => progress.push(p));
  assert.equal(outcome.status, 'done');
  const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
  assert.equal(result.name, 'speaker');
  assert.deepEqual(result.sweeps.resid_pre!.shape, [2, result.tokens[0]!.clean.ids.length]);
  assert.ok(progress.some((p) => p.phase === 'sweep' && p.done === p.total && p.runId === 'r1'));
  const status = await client.status();
  assert.equal(status?.model?.provider, 'cpu');
  assert.deepEqual(status?.running, []);
});

test('a user error comes back as its one-line message, with the spec location', async () => {
  const bad = join(dir, 'bad.patch.json');
  writeFileSync(
    bad,
    JSON.stringify({ model: './model', metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: 'a b', corrupted: 'a c', answer: ' Alicia Keys', wrong: ' Bob' }] }, null, 1),
  );
  await assert.rejects(
    client.run({ runId: 'r2', specFile: bad, device: 'cpu', outDir: join(dir, 'runs') }),
    (e: unknown) => e instanceof EngineUserError && /pairs\[0\]\.answer/.test(e.message) && !e.message.includes('\n') && e.location?.file === bad,
  );
});

test('a selection run (two lines, or a JSON object) gives token ranges in the document', async () => {
  const doc = `# notes\nWhen Mary and John went out, John gave it to\nWhen Mary and John went out, Mary gave it to\n\n{ "model": "./model", "metric": "logit_diff", "sweeps": ["resid_pre"],\n  "pairs": [{ "clean": "Hi \\"Bob\\", said Alice", "corrupted": "Hi \\"Ann\\", said Alice", "answer": " Bob", "wrong": " Ann" }] }\n`;
  const docPath = join(dir, 'notes.md');
  writeFileSync(docPath, doc);
  const lines = readSelection(doc, doc.indexOf('When'), doc.indexOf('\n\n'));
  if (lines.kind !== 'prompts') throw new Error('prompts expected');
  const selection = selectionSource(docPath, lines.clean, lines.corrupted, {
    model: join(dir, 'model'),
    answer: ' Mary',
    wrong: ' John',
    sweeps: ['resid_pre'],
    name: 'notes.md-L2',
  });
  const a = await client.run({ runId: 'sel', specFile: docPath, selection, device: 'cpu', outDir: join(dir, 'runs') });
  const json = readSelection(doc, doc.indexOf('{'), doc.lastIndexOf('}') + 1);
  if (json.kind !== 'spec') throw new Error('spec expected');
  const b = await client.run({ runId: 'sel-json', specFile: docPath, specText: json.specText, device: 'cpu', outDir: join(dir, 'runs') });
  for (const outcome of [a, b]) {
    const r = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
    assert.equal(r.source, docPath);
    for (const t of [r.tokens[0]!.clean, r.tokens[0]!.corrupted!]) {
      t.ranges.forEach((range, i) => {
        if (!range) return;
        // JSON escapes: the document has \" where the prompt has ".
        assert.equal(JSON.parse(`"${doc.slice(range[0], range[1])}"`), t.strings[i], `token ${i} of ${r.name}`);
      });
    }
  }
});

/** A spec that takes seconds (naive mode, every dest×src pattern entry), for cancel and crash. */
function longSpec(name: string): string {
  const ids = (off: number) => Array.from({ length: 40 }, (_, i) => 300 + ((i * 37 + off) % 5000));
  const path = join(dir, `${name}.patch.json`);
  writeFileSync(
    path,
    JSON.stringify({
      name,
      model: './big',
      metric: 'logit_diff',
      sweeps: ['resid_pre', 'attn_head_pattern_dest_src_pos'],
      pairs: [{ clean_ids: ids(0), corrupted_ids: ids(1), answer_id: 11, wrong_id: 12 }],
    }),
  );
  return path;
}

function fakeUi(events: string[]): RunUi {
  return {
    withProgress: (_title, _onCancel, task) => task((p) => events.push(`progress:${p.phase}:${p.done ?? ''}`)),
    info: (m) => events.push(`info:${m}`),
    error: (m) => events.push(`error:${m}`),
    resultWritten: (p) => events.push(`result:${p}`),
  };
}

test('cancel stops a long run, which is recorded as cancelled, and the engine takes the next run', async () => {
  writeRandomGpt2Checkpoint(join(dir, 'big'), { nLayers: 4, nHeads: 4, dModel: 64, dVocab: 50257, nCtx: 64, seed: 4, withTokenizer: true });
  const spec = longSpec('long');
  let sweeping!: () => void;
  const started = new Promise<void>((r) => (sweeping = r));
  const t0 = Date.now();
  const run = client.run({ runId: 'long', specFile: spec, device: 'cpu', mode: 'naive', outDir: join(dir, 'runs') }, (p) => {
    if (p.phase === 'sweep' && (p.done ?? 0) > 0) sweeping();
  });
  await started;
  client.cancel('long');
  const outcome = await run;
  assert.equal(outcome.status, 'cancelled');
  assert.equal((JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult).status, 'cancelled');
  logs.push(`cancelled after ${Date.now() - t0} ms`);
  const next = await client.run({ runId: 'after-cancel', specFile: join(dir, 'speaker.patch.json'), device: 'cpu', outDir: join(dir, 'runs') });
  assert.equal(next.status, 'done');
});

test('an engine killed during a run: the run is recorded as failed, and the next run restarts the engine', async () => {
  const events: string[] = [];
  const manager = new RunDispatcher(client, fakeUi(events), () => {});
  const spec = longSpec('killed');
  const outDir = join(dir, 'runs-killed');
  const submitted = manager.submit({
    label: 'killed',
    params: { specFile: spec, device: 'cpu', mode: 'naive', outDir },
    spec: JSON.parse(readFileSync(spec, 'utf8')),
    name: 'killed',
    outDir,
    source: spec,
    modelId: './big',
  });
  // Queued behind it: must run on a fresh engine once the first is recorded.
  const second = manager.submit({
    label: 'speaker',
    params: { specFile: join(dir, 'speaker.patch.json'), device: 'cpu', outDir },
    spec: JSON.parse(readFileSync(join(dir, 'speaker.patch.json'), 'utf8')),
    name: 'speaker',
    outDir,
    modelId: './model',
  });
  assert.deepEqual(
    manager.entries().map((e) => e.state),
    ['running', 'queued'],
  );
  while (!events.some((e) => e.startsWith('progress:sweep:'))) await new Promise((r) => setTimeout(r, 20));
  const pid = client.pid!;
  process.kill(pid, 'SIGKILL');
  const end = await submitted.result;
  assert.equal(end?.kind, 'crashed');
  assert.ok(end?.kind === 'crashed' && end.error instanceof EngineCrashedError && end.error.signal === 'SIGKILL');
  const failedPath = end?.kind === 'crashed' ? end.resultPath : undefined;
  assert.ok(failedPath && existsSync(failedPath));
  const failed = JSON.parse(readFileSync(failedPath, 'utf8')) as PatchResult;
  assert.equal(failed.status, 'failed');
  assert.match(failed.message!, /SIGKILL/);
  // Killed after its model was loaded: the record has the model as the engine reported it.
  assert.deepEqual(failed.model, {
    id: './big',
    location: { kind: 'folder', dir: join(dir, 'big') },
    config: { nLayers: 4, nHeads: 4, nKvHeads: 4, dModel: 64, dHead: 16, dMlp: 256, dVocab: 50257, nCtx: 64 },
    architecture: 'gpt2',
    dtype: 'float32',
    weightsDtype: 'F32',
    provider: 'cpu',
    weightProcessing: 'none',
  });
  assert.ok(events.some((e) => e.startsWith('error:') && /engine stopped/.test(e)));
  const next = await second.result;
  assert.equal(next?.kind, 'finished');
  assert.notEqual(client.pid, pid);
});

test('an engine that cannot start is one error per request, and the next request tries again', async () => {
  const broken = newClient(join(dir, 'no-such-worker.js'));
  await assert.rejects(broken.tokenize({ model: './model', baseDir: dir, texts: ['a'] }), EngineCrashedError);
  await assert.rejects(broken.tokenize({ model: './model', baseDir: dir, texts: ['a'] }), EngineCrashedError);
  assert.equal(broken.pid, undefined);
  await broken.dispose();
});

test('PATCHLENS_ENGINE_INSPECT starts the engine with the inspector on that port, for a debugger to attach', async () => {
  assert.deepEqual(engineInspectArgv('9230'), ['--inspect=127.0.0.1:9230']);
  assert.deepEqual(engineInspectArgv(' 0.0.0.0:9230 '), ['--inspect=0.0.0.0:9230']);
  assert.equal(engineInspectArgv('yes'), undefined);
  assert.equal(engineInspectArgv('--inspect-brk'), undefined);
  const lines: string[] = [];
  const debuggable = new EngineClient({ workerPath: WORKER, execArgv: ['--import', 'tsx', ...engineInspectArgv('0')!], cwd: REPO, log: (l) => lines.push(l) });
  try {
    await debuggable.tokenize({ model: './model', baseDir: dir, texts: ['x'] });
    assert.ok(
      lines.some((l) => /^\[engine\] Debugger listening on ws:\/\/127\.0\.0\.1:\d+\//.test(l)),
      lines.join('\n'),
    );
  } finally {
    await debuggable.dispose();
  }
});
