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
  const bad = run([tl, '--arch', 'gpt2', '--attn-only']);
  assert.equal(bad.status, 2);
  assert.equal(bad.stderr.trim(), '--attn-only is for --arch transformer_lens, not gpt2');
});
