import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { makeTmpDir } from '../helpers/checkpoint';

const ROOT = join(__dirname, '..', '..');
const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts/make-checkpoint.ts'), ...args], { cwd: ROOT, encoding: 'utf8' });

test('scripts/make-checkpoint.ts writes each family in a layout the loader reads with the options given', () => {
  const neox = makeTmpDir('make-neox');
  assert.equal(
    run([neox, '--arch', 'gpt_neox', '--layers', '1', '--heads', '2', '--d-model', '8', '--vocab', '30', '--ctx', '8', '--rotary-pct', '0.5', '--sequential']).status,
    0,
  );
  const n = loadCheckpoint(neox).config;
  assert.deepEqual([n.architecture, n.nLayers, n.rotary?.dim, n.parallelAttnMlp], ['gpt_neox', 1, 2, false]);
  const tl = makeTmpDir('make-tl');
  assert.equal(run([tl, '--arch', 'transformer_lens', '--layers', '1', '--heads', '2', '--d-model', '8', '--vocab', '30', '--ctx', '8', '--act', 'gelu']).status, 0);
  const t = loadCheckpoint(tl).config;
  assert.deepEqual([t.architecture, t.attnOnly, t.activation], ['transformer_lens', false, 'gelu']);
  const qwen = makeTmpDir('make-qwen2');
  assert.equal(
    run([
      qwen,
      '--arch',
      'qwen2',
      '--layers',
      '1',
      '--heads',
      '4',
      '--kv-heads',
      '2',
      '--d-model',
      '16',
      '--vocab',
      '30',
      '--ctx',
      '8',
      '--tied',
      '--dtype',
      'BF16',
      '--shards',
      '2',
      '--sliding-window',
      '4',
    ]).status,
    0,
  );
  const q = loadCheckpoint(qwen).config;
  assert.deepEqual([q.architecture, q.nKvHeads, q.tiedEmbeddings, q.weightsDtype, q.attnBiases], ['qwen2', 2, true, 'BF16', 'qkv']);
  assert.equal(
    run([qwen, '--arch', 'gpt_neox', '--kv-heads', '2']).stderr.trim(),
    '--kv-heads is for --arch llama, mistral, qwen2, qwen3, gemma2, gemma3_text, olmo2, not gpt_neox',
  );
  const gemma = makeTmpDir('make-gemma3');
  assert.equal(
    run([
      gemma,
      '--arch',
      'gemma3_text',
      '--layers',
      '3',
      '--heads',
      '4',
      '--kv-heads',
      '1',
      '--head-dim',
      '6',
      '--d-model',
      '16',
      '--vocab',
      '30',
      '--ctx',
      '8',
      '--sliding-window',
      '2',
      '--sliding-window-pattern',
      '3',
      '--attn-softcap',
      '20',
      '--query-pre-attn-scalar',
      '8',
      '--rope-local-theta',
      '5000',
    ]).status,
    0,
  );
  const g = loadCheckpoint(gemma).config;
  assert.deepEqual([g.architecture, g.dHead, g.window, g.attnSoftcap, g.attnScale[0], g.tiedEmbeddings, g.qkNorm], ['gemma3_text', 6, [2, 2, 0], 20, Math.sqrt(8), true, 'head']);
  assert.equal(run([gemma, '--arch', 'qwen3', '--attn-softcap', '5']).stderr.trim(), '--attn-softcap is for --arch gemma2, gemma3_text, not qwen3');
  const bad = run([tl, '--arch', 'gpt2', '--attn-only']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), '--attn-only is for --arch transformer_lens, not gpt2');
});
