import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli } from '../helpers/cli';

test('help prints the usage and exits 0', () => {
  const r = runCli(['help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /usage: patchlens <command>/);
});

test('an unknown command is one line on stderr and a non-zero exit', () => {
  const r = runCli(['frobnicate']);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /unknown command 'frobnicate'/);
});
