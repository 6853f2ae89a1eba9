/**
 * The IOI-style example (examples/ioi-template.patch.json and its dataset) through the CLI, offline, on
 * the built-in induction-2l. Its induction head copies the token after an earlier occurrence of the
 * current one, and each template's only earlier "to" comes right before the indirect object, so the
 * construction says what the run must show: the IO name's residual carries the behaviour, the subject
 * names' carry none, and all three names together are the clean run itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir } from '../helpers/checkpoint';
import { runCli } from '../helpers/cli';

const EXAMPLE = resolve(__dirname, '../../examples/ioi-template.patch.json');

test('the IOI example runs on induction-2l from the CLI: one column per label over pairs of different lengths, and the patch sets the construction predicts', () => {
  const work = makeTmpDir('ioi-example');
  const r = runCli(['run', EXAMPLE, '--model', 'induction-2l', '--device', 'cpu', '--quiet', '--out', join(work, 'out'), '--cache', join(work, 'cache')]);
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(readFileSync(r.stdout.trim(), 'utf8')) as PatchResult;
  assert.equal(result.status, 'done');
  assert.equal(result.model.id, 'induction-2l');
  const lengths = new Set(result.tokens.map((t) => t.clean.ids.length));
  assert.equal(result.tokens.length, 12);
  assert.equal(lengths.size, 4, `one length per template: ${[...lengths].join(', ')}`);
  const resid = result.sweeps.resid_pre!;
  assert.deepEqual(resid.axes, ['layer', 'label']);
  assert.deepEqual([...resid.labels!].sort(), ['END', 'IO', 'S1', 'S2']);
  const sets = Object.fromEntries(result.patchSets!.map((s) => [s.name, s.value!]));
  assert.deepEqual(Object.keys(sets), ['IO name', 'subject names', 'every name']);
  // Every token that differs, restored before layer 0: the clean run, normalized to 1.
  assert.ok(Math.abs(sets['every name']! - 1) <= 1e-4, `every name: ${sets['every name']}`);
  assert.ok(sets['IO name']! > 0.95, `IO name: ${sets['IO name']}`);
  assert.ok(Math.abs(sets['subject names']!) < 0.05, `subject names: ${sets['subject names']}`);
  // A set of one is the sweep's cell: layer 0's IO column.
  const io = resid.values[resid.labels!.indexOf('IO')]!;
  assert.ok(Math.abs(sets['IO name']! - io) <= 1e-6, `IO name ${sets['IO name']} vs resid_pre[0, IO] ${io}`);
});
