/**
 * A run stopped by a job scheduler (SIGTERM) or a closed terminal (SIGHUP) in the middle of a sweep ends
 * as Ctrl-C does: the sweeps that finished are written, marked cancelled, the result's path is printed,
 * and the exit status is 128 + the signal's number. The built CLI on a local model. Issue 14, class 8.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { startCli } from '../helpers/cli';
import { BUILT, lines } from './hostile';

const skip = !existsSync(BUILT) && 'dist/cli.js is not built (npm run build)';

let work: string;
let spec: string;

before(() => {
  work = makeTmpDir('signals');
  writeRandomGpt2Checkpoint(join(work, 'model'), { nLayers: 2, nHeads: 4, dModel: 32, dVocab: 1000, nCtx: 64, seed: 11 });
  const ids = (d: number) => Array.from({ length: 40 }, (_, i) => 10 + ((i * 7 + d) % 900));
  spec = join(work, 'slow.patch.json');
  // resid_pre takes a moment; the dest x src pattern sweep, one forward per patched index, takes far longer.
  writeFileSync(
    spec,
    JSON.stringify({
      name: 'slow',
      model: './model',
      metric: 'logit_diff',
      sweeps: ['resid_pre', 'attn_head_pattern_dest_src_pos'],
      pairs: [{ clean_ids: ids(0), corrupted_ids: ids(3), answer_id: 5, wrong_id: 6 }],
    }),
  );
});

for (const [signal, status] of [
  ['SIGTERM', 143],
  ['SIGHUP', 129],
  ['SIGINT', 130],
] as const) {
  test(`${signal} in the middle of a sweep: the finished sweeps are written, marked cancelled; exit ${status}`, { skip }, async () => {
    const p = startCli(['run', spec, '--device', 'cpu', '--naive', '--out', join(work, `out-${signal}`)], { cwd: work, timeoutMs: 120_000 });
    await p.waitForStderr(/sweep: attn_head_pattern_dest_src_pos/);
    p.child.kill(signal);
    const r = await p.done;
    assert.ok(!r.timedOut, r.stderr);
    assert.equal(r.status, status, r.stderr);
    assert.equal(lines(r.stderr).at(-1), 'patchlens: cancelled after 1 of 2 sweeps');
    const [path] = lines(r.stdout);
    const result = JSON.parse(readFileSync(path!, 'utf8')) as PatchResult;
    assert.equal(result.status, 'cancelled');
    assert.deepEqual(Object.keys(result.sweeps), ['resid_pre']);
  });
}
