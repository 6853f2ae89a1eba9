/**
 * Split runs through the built CLI: `patchlens run --shard i/n` on every share, then `patchlens merge`,
 * over 1, 2, 3 and 7 shards, gives the result file the whole run writes: every value bit for bit, and
 * every other field but the two that belong to the runs (createdAt, engine.seconds; source and
 * model.location too, which are the same here). Bad shard sets are refused: exit 1, one line, no stack.
 * The extension reads a merged result as any other, and names a shard for what it is.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { readResultFile } from '../../src/common/resultFile';
import type { PatchResult } from '../../src/protocol/result';
import type { ShardResult } from '../../src/protocol/shard';
import { RunHistory } from '../../src/extension/runHistory';
import { sweepCsv } from '../../src/extension/panelModel';
import { runCli } from '../helpers/cli';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';

let work: string;

const MODEL = { nLayers: 2, nHeads: 2, dModel: 8, dVocab: 50257, nCtx: 32, withTokenizer: true };

before(() => {
  work = makeTmpDir('shards');
  writeRandomGpt2Checkpoint(join(work, 'model'), { ...MODEL, seed: 61 });
  writeRandomGpt2Checkpoint(join(work, 'other'), { ...MODEL, seed: 62 });
  // Slots shared between sweeps (block_every's resid_pre part is the resid_pre sweep), heads, two lengths padded, patch sets.
  writeFileSync(
    join(work, 'plain.patch.json'),
    JSON.stringify({
      model: './model',
      metric: 'logit_diff',
      sweeps: ['resid_pre', 'attn_head_out_all_pos', 'block_every'],
      patch_sets: [
        { name: 'heads', components: ['L0H1', 'L1H0'] },
        { name: 'residual', components: ['L1.resid_pre'] },
        { name: 'late mlp', components: ['L0.mlp_out@5', 'L1.attn_out@5'] },
      ],
      pairs: [
        { clean: 'When Mary and John went out, John gave it to', corrupted: 'When Mary and John went out, Mary gave it to', answer: ' Mary', wrong: ' John' },
        { clean: 'Anne and Bob argued; Bob said to', corrupted: 'Anne and Bob argued; Anne said to', answer: ' Anne', wrong: ' Bob' },
      ],
    }),
  );
  // A dataset of pairs of different lengths with labelled positions, noising.
  const pairs = [
    {
      clean: 'When [IO]Mary[/IO] and [S]John[/S] went to the store, John gave a drink[END] to[/END]',
      corrupted: 'When Mary and John went to the store, Mark gave a drink to',
      answer: ' Mary',
      wrong: ' John',
    },
    { clean: 'Then [IO]Anne[/IO] and [S]Bob[/S] argued, and Bob said[END] to[/END]', corrupted: 'Then Anne and Bob argued, and Mark said to', answer: ' Anne', wrong: ' Bob' },
    { clean: 'After [IO]Lisa[/IO] met [S]Tom[/S], Tom handed it[END] to[/END]', corrupted: 'After Lisa met Tom, Mark handed it to', answer: ' Lisa', wrong: ' Tom' },
  ];
  writeFileSync(join(work, 'ioi.jsonl'), pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
  writeFileSync(
    join(work, 'labelled.patch.json'),
    JSON.stringify({ model: './model', metric: 'logit_diff', direction: 'noising', sweeps: ['resid_pre', 'attn_head_out_by_pos', 'attn_head_by_pos_every'], dataset: 'ioi.jsonl' }),
  );
});

/** Runs the CLI in the work folder; its stdout lines (the paths it wrote). */
function ok(args: string[]): string[] {
  const r = runCli(args, work);
  assert.equal(r.status, 0, `patchlens ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim().split('\n');
}

/** The one line a refused command prints; exit code 1 and no stack trace. */
function refused(args: string[]): string {
  const r = runCli(args, work);
  assert.equal(r.status, 1, `patchlens ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
  return lines[0]!;
}

const read = <T>(path: string): T => JSON.parse(readFileSync(resolve(work, path), 'utf8')) as T;

/** The result without the fields that belong to the run rather than to the result. */
const runFree = (r: PatchResult) => ({ ...r, createdAt: '', engine: { ...r.engine, seconds: 0 } });

function assertSameResult(merged: string, whole: string, what: string): void {
  const a = read<PatchResult>(merged);
  const b = read<PatchResult>(whole);
  assert.deepEqual(Object.keys(a.sweeps), Object.keys(b.sweeps), what);
  for (const [name, sweep] of Object.entries(b.sweeps)) {
    const got = a.sweeps[name as keyof typeof a.sweeps]!.values;
    const differs = sweep.values.findIndex((v, i) => !Object.is(v, got[i]));
    assert.equal(differs, -1, `${what}: ${name}[${differs}] is ${got[differs]} merged, ${sweep.values[differs]} whole`);
  }
  assert.equal(JSON.stringify(runFree(a)), JSON.stringify(runFree(b)), `${what}: the files differ beyond createdAt and engine.seconds`);
}

const memo = new Map<string, string[]>();

/** Runs every share of an n-way split into its own folder (once per test file); the shard files' paths. */
function split(spec: string, n: number, extra: string[] = []): string[] {
  const dir = `${basename(spec, '.patch.json')}${extra.join('')}-${n}`;
  if (!memo.has(dir))
    memo.set(
      dir,
      Array.from({ length: n }, (_, i) => ok(['run', spec, '--shard', `${i + 1}/${n}`, '--out', dir, '--quiet', ...extra])[0]!),
    );
  return memo.get(dir)!;
}

/** The whole run's result file (once per test file). */
function whole(spec: string, extra: string[] = []): string {
  const dir = `whole-${basename(spec, '.patch.json')}${extra.join('')}`;
  if (!memo.has(dir)) memo.set(dir, ok(['run', spec, '--out', dir, '--quiet', ...extra]));
  return memo.get(dir)![0]!;
}

const CASES: { spec: string; extra: string[]; splits: number[] }[] = [
  { spec: 'plain.patch.json', extra: [], splits: [1, 2, 3, 7] },
  { spec: 'labelled.patch.json', extra: [], splits: [2, 7] },
  { spec: 'labelled.patch.json', extra: ['--naive'], splits: [3] },
];

for (const c of CASES) {
  test(`${c.spec} ${c.extra.join(' ')}: --shard then merge over ${c.splits.join(', ')} shards is the whole run's result`, () => {
    for (const n of c.splits) {
      const shards = split(c.spec, n, c.extra);
      const held = shards.map((s) => Object.values(read<ShardResult>(s).sweeps).reduce((a, w) => a + w.values.length, 0));
      // Each of a few shards has a share of the work (7 may outnumber the batches of a small sweep).
      if (n <= 3)
        assert.ok(
          held.every((h) => h > 0),
          `shares ${held}`,
        );
      const merged = ok(['merge', `merged-${basename(c.spec, '.patch.json')}${c.extra.join('')}-${n}`, dirname(shards[0]!)])[0]!;
      assert.match(merged, /\.result\.json$/);
      assertSameResult(merged, whole(c.spec, c.extra), `${n} shards`);
    }
  });
}

test('bad shard sets are refused with one line that names the problem', () => {
  const three = split('plain.patch.json', 3);
  const two = split('plain.patch.json', 2);
  const labelled = split('labelled.patch.json', 2);
  assert.match(refused(['merge', 'out', three[0]!, three[1]!]), /missing shard 3\/3 of 'plain'.*--shard 3\/3/);
  assert.match(refused(['merge', 'out', three[0]!, ...three]), /shard 1\/3 is given twice/);
  assert.match(refused(['merge', 'out', two[0]!, labelled[1]!]), /shards of different specs: .* of 'plain' .* of 'labelled'/);
  assert.match(refused(['merge', 'out', two[0]!, three[1]!, three[2]!]), /is shard 1 of 2 but .* is shard 2 of 3/);
  const otherModel = ok(['run', 'plain.patch.json', '--shard', '2/2', '--model', './other', '--out', 'other-model', '--quiet'])[0]!;
  assert.match(refused(['merge', 'out', two[0]!, otherModel]), /shards of different models/);
  const otherBudget = ok(['run', 'plain.patch.json', '--shard', '2/2', '--memory-budget', '0.01', '--out', 'other-budget', '--quiet'])[0]!;
  assert.match(refused(['merge', 'out', two[0]!, otherBudget]), /cut the sweeps into batches differently \(.*1024 MiB.*0\.01 MiB/);
  // Another kind of machine's arithmetic shows first in the baselines.
  mkdirSync(join(work, 'edited'), { recursive: true });
  const edited = read<ShardResult>(two[1]!);
  writeFileSync(join(work, 'edited', 'b.json'), JSON.stringify({ ...edited, baselines: { ...edited.baselines, clean: edited.baselines!.clean + 1e-6 } }));
  assert.match(refused(['merge', 'out', two[0]!, 'edited/b.json']), /computed different baselines .* same kind of machine/);
  assert.match(refused(['merge', 'out', whole('plain.patch.json')]), /is not a shard .*: it is a whole result/);
  mkdirSync(join(work, 'empty'), { recursive: true });
  assert.match(refused(['merge', 'out', 'empty']), /holds no shard files/);
  assert.match(refused(['merge', 'out']), /usage: patchlens merge OUT SHARDS/);
  assert.match(refused(['merge', whole('plain.patch.json'), ...two]), /already exists/);
  assert.match(refused(['merge', two[0]!, ...two]), /OUT must be a folder or a new \.result\.json file/);
  for (const bad of ['0/3', '4/3', 'x', '1/0', '2']) assert.match(refused(['run', 'plain.patch.json', '--shard', bad]), /--shard takes I\/N/, bad);
  assert.match(refused(['run', 'plain.patch.json', '--shard', '1/2', '--png']), /leave out --png/);
  assert.match(refused(['run', 'plain.patch.json', '--shard', '1/2', '--method', 'atp']), /not split/);
  const plain = JSON.parse(readFileSync(join(work, 'plain.patch.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(work, 'path.patch.json'), JSON.stringify({ ...plain, path_patching: { receivers: 'resid_final' } }));
  assert.match(refused(['run', 'path.patch.json', '--shard', '1/2', '--quiet']), /does not split path patching/);
  // Merged into a file named on the command line, with PNGs.
  const named = ok(['merge', 'named/ioi.result.json', '--png', ...two]);
  assert.equal(named[0], 'named/ioi.result.json');
  assert.equal(named.length, 1 + 3);
});

test('the extension opens a merged result as any other, and says what a shard file is', () => {
  const merged = ok(['merge', 'opened', ...split('labelled.patch.json', 3, ['--naive'])])[0]!;
  // The panel's and the runs view's way in.
  const result = readResultFile(resolve(work, merged));
  assert.equal(result.status, 'done');
  assert.deepEqual(result.sweeps.resid_pre!.labels, ['IO', 'S', 'END']);
  assert.match(sweepCsv(result, 'resid_pre'), /IO/);
  const listed = new RunHistory().list(join(work, 'opened'));
  assert.deepEqual(
    listed.map((e) => e.kind === 'result' && [e.name, e.status, e.sweeps]),
    [['labelled', 'done', ['resid_pre', 'attn_head_out_by_pos', 'attn_head_by_pos_every']]],
  );
  copyFileSync(resolve(work, split('labelled.patch.json', 3, ['--naive'])[0]!), join(work, 'opened', 'labelled-shard.result.json'));
  assert.throws(
    () => readResultFile(join(work, 'opened', 'labelled-shard.result.json')),
    /shard 1 of 3 of a split run, not a whole result; combine the shards with 'patchlens merge/,
  );
});
