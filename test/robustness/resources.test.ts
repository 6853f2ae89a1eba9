/**
 * Resource limits: prompts longer than the model's context (caught when the spec is resolved, and
 * again by the model itself), and sweeps whose patched batch exceeds the memory budget (split into
 * several runs, with the same numbers as one big run).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HookedTransformer } from '../../src/engine/hookedTransformer';
import { writeGpt2TokenizerFiles } from '../../src/engine/model/gpt2Tokenizer';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import { bytesPerRow } from '../../src/engine/patching/memory';
import { runPatching } from '../../src/engine/patching/runPatching';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseSpecText } from '../../src/spec/parseSpec';
import type { Tensor32 } from '../../src/engine/tensor';
import type { PatchingMode } from '../../src/protocol/engineRpc';
import type { ResolvedPair, ResolvedSpec, SweepName } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { maxAbsDiff, randomModel, seededInts } from '../helpers/models';
import { attempt, userErrorProblem } from './fuzz';

async function userError(f: () => Promise<unknown> | unknown, ...parts: (string | RegExp)[]): Promise<string> {
  let error: unknown;
  try {
    await f();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, `expected a UserError (${parts.join(', ')})`);
  const problem = userErrorProblem(error);
  assert.equal(problem, undefined, problem);
  const msg = (error as Error).message;
  for (const p of parts) {
    if (typeof p === 'string') assert.ok(msg.includes(p), `message '${msg}' should mention '${p}'`);
    else assert.match(msg, p);
  }
  return msg;
}

// ---------------------------------------------------------------------------------------------
// Context length

test('a prompt longer than the context: resolveSpec names the field, the token count and n_ctx', async () => {
  // GPT-2's vocabulary and tokenizer with a 16-token context.
  const m = await randomModel({ nLayers: 1, nHeads: 2, dModel: 8, dVocab: 50257, nCtx: 16, seed: 21 });
  const dir = makeTmpDir('ctx-tokenizer');
  writeGpt2TokenizerFiles(dir);
  const tok = await loadTokenizer(dir, m.cfg);
  const resolve = (text: string) => resolveSpec(parseSpecText(text, 'ctx.patch.json'), tok, m.cfg, { file: 'ctx.patch.json', text });
  const words = (n: number) => Array.from({ length: n }, () => ' the').join('');
  const spec = (clean: string, corrupted: string) => JSON.stringify({ metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean, corrupted, answer: ' a', wrong: ' b' }] });

  // 15 words + BOS = 16 tokens: exactly the context, accepted.
  assert.equal(resolve(spec(words(15), words(15))).pairs[0]!.clean.length, 16);
  await userError(
    () => resolve(spec(words(16), words(16))),
    /^ctx\.patch\.json:1:\d+: pairs\[0\]\.clean is 17 tokens \(with BOS\), but the model's context is 16 \(n_ctx\); shorten the prompt$/,
  );
  // A pasted megabyte: refused from its start, quickly, with both numbers.
  await userError(() => resolve(spec(words(300_000), words(300_000))), 'pairs[0].clean is 1200000 characters', "the model's context is 16");
  await userError(
    () =>
      resolve(
        JSON.stringify({
          metric: 'logit_diff',
          sweeps: ['resid_pre'],
          prepend_bos: false,
          pairs: [{ clean_ids: Array(17).fill(1), corrupted_ids: Array(17).fill(2), answer_id: 1, wrong_id: 2 }],
        }),
      ),
    'pairs[0].clean_ids is 17 tokens',
    'context is 16',
  );
  await userError(
    () => resolve(JSON.stringify({ metric: 'answer_logprob', sweeps: ['resid_pre'], induction: { seed: 1, length: 8, corrupted: 'AB' } })),
    'induction.length 8 gives 17 tokens',
    'context is 16',
    'length ≤ 7',
  );
});

test('a prompt longer than the context given straight to the model: HookedTransformer.forward names both numbers', async () => {
  const m = await randomModel({ nLayers: 1, nHeads: 2, dModel: 8, dVocab: 64, nCtx: 16, seed: 22 });
  const ok = await m.model.forward([Array(16).fill(3)]);
  assert.deepEqual(ok.logits.shape, [1, 16, 64]);
  await userError(() => m.model.forward([Array(17).fill(3)]), '17 tokens', "the model's context is 16");
  await userError(() => m.model.forward([Array(100_000).fill(3)]), '100000 tokens', 'context is 16');
  // A whole run: the baselines are the first forward, and the run stops there.
  const spec: ResolvedSpec = {
    name: 'long',
    model: undefined,
    metric: 'logit_diff',
    sweeps: ['resid_pre'],
    prependBos: false,
    pairs: [{ clean: Array(20).fill(1), corrupted: Array(20).fill(2), answer: 1, wrong: 2 }],
  };
  await userError(() => runPatching(m.model, spec), '20 tokens', 'context is 16');
  // Other malformed input the model can be handed directly.
  for (const [ids, part] of [
    [[], 'no prompts'],
    [[[]], 'no tokens'],
    [[[1, 2], [1]], 'equal lengths'],
    [[[1, 64]], 'token id 64'],
    [[[1, -1]], 'token id -1'],
    [[[1, 1.5]], 'token id 1.5'],
  ] as [number[][], string][]) {
    const r = attempt(() => m.model.validateIds(ids));
    assert.ok(!r.ok, part);
    assert.equal(userErrorProblem(r.error), undefined);
    assert.ok((r.error as Error).message.includes(part), `${(r.error as Error).message} should mention ${part}`);
  }
});

// ---------------------------------------------------------------------------------------------
// Memory budget

interface RunLog {
  /** Rows of each patched block run (fast) or full forward (naive), baselines excluded. */
  rows: number[];
}

/** Counts the rows of every run the executors make, by wrapping the model's two entry points. */
function countRuns(model: HookedTransformer, log: RunLog, nPairs: number): () => void {
  const forward = model.forward.bind(model);
  const blockSuffix = model.blockSuffix.bind(model);
  let forwards = 0;
  model.forward = (ids, opts) => {
    // The first two forwards are the clean and corrupted baselines, one row per pair.
    if (forwards++ >= 2) log.rows.push(ids.length);
    else assert.equal(ids.length, nPairs);
    return forward(ids, opts);
  };
  model.blockSuffix = (layer: number, resid: Tensor32, ...rest) => {
    log.rows.push(resid.shape[0]!);
    return blockSuffix(layer, resid, ...rest);
  };
  return () => {
    model.forward = forward;
    model.blockSuffix = blockSuffix;
  };
}

test('a sweep whose patched batch exceeds the memory budget is split into runs within it, with the same results', async (t) => {
  const m = await randomModel({ nLayers: 2, nHeads: 2, dModel: 16, dVocab: 64, nCtx: 16, seed: 23 });
  const rnd = seededInts(5);
  const pairs: ResolvedPair[] = [7, 6].map((len) => {
    const clean = Array.from({ length: len }, () => rnd(0, 64));
    return { clean, corrupted: clean.map((x, i) => (i % 2 ? rnd(0, 64) : x)), answer: rnd(0, 64), wrong: rnd(0, 64) };
  });
  const sweeps: SweepName[] = ['resid_pre', 'mlp_out', 'attn_head_out_by_pos', 'attn_head_pattern_dest_src_pos', 'attn_head_all_pos_every'];
  const spec: ResolvedSpec = { name: 'budget', model: undefined, metric: 'logit_diff', sweeps, prependBos: false, pairs };
  const nPos = 7;
  const n = pairs.length;
  const perRowFast = bytesPerRow(m.cfg, nPos);
  const perRowNaive = perRowFast + 4 * nPos * m.cfg.dVocab;

  for (const mode of ['fast', 'naive'] as PatchingMode[]) {
    const big: RunLog = { rows: [] };
    let restore = countRuns(m.model, big, n);
    const reference = await runPatching(m.model, spec, { mode });
    restore();
    const perRow = mode === 'fast' ? perRowFast : perRowNaive;
    // Budgets that allow 3 copies of the batch, 1 copy, and less than one copy (which still runs, one copy at a time).
    // The naive executor does not batch (so one budget is enough to show the results hold).
    for (const budgetBytes of mode === 'fast' ? [3 * n * perRow + 1, n * perRow, perRow] : [perRow]) {
      const log: RunLog = { rows: [] };
      restore = countRuns(m.model, log, n);
      const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: budgetBytes / 2 ** 20 });
      restore();
      for (const s of sweeps) {
        const d = maxAbsDiff(out.sweeps[s]!.values, reference.sweeps[s]!.values);
        assert.ok(d <= 1e-5, `${mode}, budget ${budgetBytes} B: ${s} differs from the big-budget run by ${d}`);
      }
      const allowed = Math.max(n, Math.floor(budgetBytes / perRow / n) * n);
      const over = log.rows.filter((r) => r > allowed);
      assert.deepEqual(over, [], `${mode}, budget ${budgetBytes} B: runs of ${over.join(', ')} rows, at most ${allowed} allowed`);
      assert.ok(
        log.rows.every((r) => r % n === 0),
        'every run holds whole copies of the batch',
      );
      // The naive executor (TransformerLens's loop) runs one copy at a time whatever the budget.
      if (Math.max(...big.rows) > n) assert.ok(log.rows.length > big.rows.length, `${mode}: the small budget split the work (${log.rows.length} runs vs ${big.rows.length})`);
      t.diagnostic(
        `${mode}, budget ${budgetBytes} B (${(budgetBytes / perRow).toFixed(1)} rows): ${log.rows.length} runs of at most ${Math.max(...log.rows)} rows; default budget: ${big.rows.length} runs of at most ${Math.max(...big.rows)} rows`,
      );
    }
  }
});

test('a memory budget that is not a positive number is refused in one line, never a crash', async () => {
  const m = await randomModel({ nLayers: 1, nHeads: 2, dModel: 8, dVocab: 32, nCtx: 8, seed: 24 });
  const spec: ResolvedSpec = {
    name: 'b',
    model: undefined,
    metric: 'logit_diff',
    sweeps: ['resid_pre'],
    prependBos: false,
    pairs: [{ clean: [1, 2, 3], corrupted: [1, 4, 3], answer: 5, wrong: 6 }],
  };
  const reference = await runPatching(m.model, spec);
  for (const mode of ['fast', 'naive'] as PatchingMode[]) {
    for (const bad of [Number.NaN, 0, -1, -Infinity, 'abc' as unknown as number]) {
      await userError(() => runPatching(m.model, spec, { mode, memoryBudgetMiB: bad }), 'memory budget');
    }
    // No limit at all is a valid choice: one run per start position.
    const out = await runPatching(m.model, spec, { mode, memoryBudgetMiB: Infinity });
    assert.ok(maxAbsDiff(out.sweeps.resid_pre!.values, reference.sweeps.resid_pre!.values) <= 1e-5);
  }
});
