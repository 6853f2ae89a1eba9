import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Runtime } from '../../src/engine/runtime';

test("an unknown device is a UserError listing the choices", async () => {
  await assert.rejects(Runtime.create('tpu' as never), (e: Error) => e.name === 'UserError' && /auto, cpu, webgpu/.test(e.message));
});

test('auto picks a provider that works, says why others were skipped, and prints nothing to stderr', () => {
  // A child process, so that native libraries writing to the real stderr are caught too.
  const code = `require('./src/engine/runtime').Runtime.create('auto').then((r) => console.log(JSON.stringify({ provider: r.provider, notes: r.notes })))`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], { cwd: resolve(__dirname, '../..'), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  const { provider, notes } = JSON.parse(r.stdout) as { provider: string; notes: string[] };
  assert.ok(['cpu', 'cuda', 'webgpu'].includes(provider));
  if (provider === 'cpu') assert.ok(notes.length >= 1 && notes.every((n) => /unavailable/.test(n)), JSON.stringify(notes));
});
