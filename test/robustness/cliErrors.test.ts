/**
 * `patchlens run` with every kind of bad input a user can give it: the process exits with status 1
 * (a user error, not 70, an internal one), prints exactly one line on stderr that names the field and
 * the fix, prints no stack trace, and leaves no result file behind. Runs the built CLI (npm run build).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { runCli } from '../helpers/cli';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';

const BUILT = resolve(__dirname, '..', '..', 'dist', 'cli.js');
let work: string;
let down: string;

before(async () => {
  work = makeTmpDir('cli-errors');
  // GPT-2's vocabulary and tokenizer, one tiny layer, a 32-token context.
  writeRandomGpt2Checkpoint(join(work, 'model'), { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 50257, nCtx: 32, seed: 41, withTokenizer: true });
  writeRandomGpt2Checkpoint(join(work, 'absurd'), { nLayers: 1, nHeads: 2, dModel: 8, dVocab: 50, nCtx: 8, seed: 42 });
  writeFileSync(join(work, 'absurd', 'config.json'), JSON.stringify({ model_type: 'gpt2', n_embd: 1e9, n_head: 2, n_layer: 1, vocab_size: 50, n_positions: 8 }));
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  down = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((r) => probe.close(() => r()));
});

const GOOD = {
  model: './model',
  metric: 'logit_diff',
  sweeps: ['resid_pre'],
  pairs: [{ clean: 'When Alice met Bob, Bob thanked', corrupted: 'When Alice met Bob, Alice thanked', answer: ' Alice', wrong: ' Bob' }],
};
const spec = (edit: (s: Record<string, unknown>) => void): string => {
  const s = JSON.parse(JSON.stringify(GOOD)) as Record<string, unknown>;
  edit(s);
  return JSON.stringify(s, null, 2);
};
const pair = (s: Record<string, unknown>) => (s.pairs as Record<string, unknown>[])[0]!;

interface Case {
  what: string;
  /** The spec file's content (absent: the file is not written). */
  content?: string | Buffer;
  /** Path given on the command line, relative to the case folder (default spec.patch.json). */
  file?: string;
  args?: string[];
  env?: Record<string, string>;
  /** What the one stderr line must say: the field or place, and the fix. */
  says: (string | RegExp)[];
}

const CASES: Case[] = [
  { what: 'not JSON', content: '{ "metric": logit_diff }', says: [/\.patch\.json:1:13: not valid JSON: unexpected word 'logit_diff'/, 'double quotes'] },
  { what: 'truncated JSON', content: spec(() => {}).slice(0, 60), says: [/\.patch\.json:4:11: not valid JSON/, "property name 'sweeps'", 'found end of file'] },
  { what: 'an empty file', content: '', says: ['the file is empty', 'template'] },
  {
    what: 'invalid UTF-8 in a key',
    content: Buffer.concat([Buffer.from('{"me'), Buffer.from([0xff]), Buffer.from('tric": "logit_diff", "sweeps": ["resid_pre"]}')]),
    says: ['unknown top-level key', "did you mean 'metric'"],
  },
  { what: 'a schema violation (sweeps is a string)', content: spec((s) => (s.sweeps = 'resid_pre')), says: ['sweeps must be a list', '["resid_pre"'] },
  { what: 'a wrong type (answer is a number)', content: spec((s) => (pair(s).answer = 5)), says: ['pairs[0].answer must be a string', 'answer_id'] },
  { what: 'an unknown key', content: spec((s) => (s.sweep = ['resid_pre'])), says: ["unknown top-level key 'sweep'", "did you mean 'sweeps'"] },
  { what: 'a duplicate key', content: '{"metric": "logit_diff", "metric": "kl_divergence", "sweeps": ["resid_pre"]}', says: ["duplicate key 'metric'", 'remove one'] },
  { what: 'an unknown sweep', content: spec((s) => (s.sweeps = ['resid_pr'])), says: ["unknown sweep 'resid_pr' at sweeps[0]", "did you mean 'resid_pre'"] },
  { what: 'an unknown metric', content: spec((s) => (s.metric = 'logit_dif')), says: ["unknown metric 'logit_dif' at metric", "did you mean 'logit_diff'"] },
  { what: 'a metric that needs answers, without them', content: spec((s) => delete pair(s).wrong), says: ['pairs[0] has no wrong answer', '"wrong"'] },
  { what: 'an answer that is not a single token', content: spec((s) => (pair(s).answer = ' Alice Bob')), says: ["pairs[0].answer ' Alice Bob' is 2 tokens", 'exactly one token'] },
  { what: 'an answer without its leading space', content: spec((s) => (pair(s).answer = 'Alicex')), says: ['pairs[0].answer', 'one token'] },
  {
    what: 'token ids out of range',
    content: spec((s) => (s.pairs = [{ clean_ids: [1, 60000], corrupted_ids: [1, 2], answer_id: 1, wrong_id: 2 }])),
    says: ['pairs[0].clean_ids[1]', '60000', 'use ids below 50257'],
  },
  {
    what: 'a negative token id',
    content: spec((s) => (s.pairs = [{ clean_ids: [1, -2], corrupted_ids: [1, 2], answer_id: 1, wrong_id: 2 }])),
    says: ['pairs[0].clean_ids[1] is -2', 'token ids start at 0'],
  },
  {
    what: 'prompts of unequal length within a pair',
    content: spec((s) => (pair(s).corrupted = 'When Alice met Bob, thanked')),
    says: ['pairs[0]: clean has', 'corrupted has', 'same number of tokens', 'swap names'],
  },
  {
    what: 'a prompt longer than the context',
    content: spec((s) => ((pair(s).clean = ' the'.repeat(40)), (pair(s).corrupted = ' a'.repeat(40)))),
    says: ['pairs[0].clean is 41 tokens', 'context is 32 (n_ctx)', 'shorten'],
  },
  { what: 'no model given', content: spec((s) => delete s.model), says: ['no model given', 'add "model"', '--model'] },
  {
    what: 'a model folder that does not exist',
    content: spec((s) => (s.model = './no-such-model')),
    says: ["model './no-such-model' is neither an existing folder", 'check the path'],
  },
  { what: 'a model whose config.json is absurd', content: spec((s) => (s.model = './absurd')), says: ["'n_embd'", '1000000000', 'not a GPT-2 model'] },
  {
    what: 'a model larger than the memory limit',
    content: spec(() => {}),
    env: { PATCHLENS_MAX_MODEL_BYTES: '1000' },
    says: ['needs', 'PATCHLENS_MAX_MODEL_BYTES=1000', 'smaller model'],
  },
  {
    what: 'a hub model with the hub unreachable',
    content: spec((s) => (s.model = 'org/not-cached')),
    args: ['--hub-endpoint', '@DOWN', '--cache', '@CACHE'],
    says: ['unreachable', 'local model folder'],
  },
  { what: 'a spec file that does not exist', file: 'missing.patch.json', says: ['cannot read the spec', 'missing.patch.json', 'ENOENT', 'check the path'] },
  { what: 'a folder given as the spec', file: 'a-folder', says: ['cannot read the spec', 'a-folder', 'it is a folder'] },
  { what: 'a bad --memory-budget', content: spec(() => {}), args: ['--memory-budget', 'lots'], says: ["--memory-budget needs a positive number of MiB, got 'lots'"] },
  { what: 'an unknown option', content: spec(() => {}), args: ['--frobnicate'], says: ['--frobnicate', "run 'patchlens help'"] },
  { what: 'an unknown device', content: spec(() => {}), args: ['--device', 'tpu'], says: ["unknown device 'tpu'", 'use one of'] },
];

for (const c of CASES) {
  test(
    `patchlens run, ${c.what}: exit 1, one line on stderr naming the problem, no stack, no result`,
    { skip: !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)' },
    () => {
      // Specs sit beside the models, which they name by relative path ('./model').
      const slug = c.what.replace(/[^A-Za-z0-9]+/g, '-');
      const specPath = join(work, c.file ?? `${slug}.patch.json`);
      if (c.content !== undefined) writeFileSync(specPath, c.content);
      if (c.file === 'a-folder') mkdirSync(specPath, { recursive: true });
      const out = join(work, 'out', slug);
      const args = (c.args ?? []).map((a) => (a === '@DOWN' ? down : a === '@CACHE' ? join(work, 'cache', slug) : a));
      const saved = { ...process.env };
      Object.assign(process.env, c.env ?? {});
      let r;
      try {
        // --device cpu keeps these cases independent of the machine's GPUs; auto is checked on its own below.
        r = runCli(['run', specPath, '--quiet', '--device', 'cpu', '--out', out, ...args], work);
      } finally {
        for (const k of Object.keys(c.env ?? {})) if (saved[k] === undefined) delete process.env[k];
      }
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      assert.equal(r.status, 1, `exit status ${r.status}; stderr: ${r.stderr}`);
      assert.equal(lines.length, 1, `stderr has ${lines.length} lines:\n${r.stderr}`);
      const line = lines[0]!;
      assert.match(line, /^patchlens: /);
      assert.doesNotMatch(line, /\bat \S+ \(|node:internal|\.ts:\d+|\.js:\d+|internal error|TypeError|RangeError/, line);
      for (const s of c.says) {
        if (typeof s === 'string') assert.ok(line.includes(s), `'${line}' should mention '${s}'`);
        else assert.match(line, s);
      }
      assert.equal(r.stdout, '', 'nothing on stdout');
      assert.ok(!existsSync(out) || readdirSync(out).length === 0, 'no result file for a run that never started');
    },
  );
}

test('the control: the same spec, valid (with a BOM and CRLF line ends), runs and exits 0', { skip: !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)' }, () => {
  const specPath = join(work, 'valid.patch.json');
  writeFileSync(specPath, `\ufeff${spec(() => {}).replace(/\n/g, '\r\n')}`);
  const r = runCli(['run', specPath, '--quiet', '--device', 'cpu', '--out', join(work, 'out', 'valid')], work);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout.trim(), /valid\.result\.json$/);
});

test(
  'with --device auto on a machine without CUDA or Vulkan, a user error is still the only line on stderr',
  { skip: !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)' },
  () => {
    const specPath = join(work, 'auto-device.patch.json');
    writeFileSync(
      specPath,
      spec((s) => (pair(s).answer = ' Alice Bob')),
    );
    const r = runCli(['run', specPath, '--quiet', '--out', join(work, 'out', 'auto')], work);
    assert.equal(r.status, 1);
    assert.deepEqual(r.stderr.split('\n').filter((l) => l !== '').length, 1, r.stderr);
  },
);
