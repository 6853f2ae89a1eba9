/**
 * Patching must find the circuit induction-2l was built with (src/engine/model/builtin/induction2l.ts):
 * previous-token head L0H1 and induction head L1H2, distractors elsewhere. Every expectation here is
 * derived from the construction, on the notebook's setup (examples/induction-*.patch.json: BOS + 20
 * random tokens from [100, 10000) twice, batch 4, seed 0), through the real tokenizer and runPatching.
 *
 * What the construction implies, target by target (second-half position i, current token x, the
 * metric's target = the clean token after x):
 *   - the induction head's query is x, its keys are the previous token of each position j (PREV,
 *     written by L0H1), its values the token at j; it attends to every j whose previous token is x,
 *     and copies the tokens there (the unembedding reads nothing else). No such j: it attends to BOS,
 *     copies nothing, and every logit is 0: log p = −log 50257 = −10.82 ("U" below).
 *   - copying the target: log p ≈ 0 ("C"); copying another token: the target's logit is ≈ 0 and the
 *     copied one's s = 30, so log p ≈ −30 ("W", confidently wrong).
 *   - L0H1's query, key and pattern read positions only, identical in both runs: patching them changes
 *     nothing. Its output and value carry which token came before each position.
 *   - distractors write at most ε = 0.01 anywhere: patching one changes next to nothing.
 * `ideal` below evaluates exactly this on the actual token ids, for any single patch, so repeats that
 * the random tokens happen to contain are accounted for rather than tolerated.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { INDUCTION_2L, writeInduction2l } from '../../src/engine/model/builtin/induction2l';
import { builtinModelDir } from '../../src/engine/model/builtinModels';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import type { TextTokenizer } from '../../src/engine/model/tokenizer';
import { type PatchingOutcome, runPatching } from '../../src/engine/patching/runPatching';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseSpecText } from '../../src/spec/parseSpec';
import type { InductionPattern, ResolvedPair, ResolvedSpec } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { loadTestModel, type TestModel } from '../helpers/models';

const C = INDUCTION_2L;
const V = C.dVocab;
const LOG_V = Math.log(V);
const S = C.unembedScale;
const COMPONENTS = ['output', 'query', 'key', 'value', 'pattern'] as const;
type Component = (typeof COMPONENTS)[number];
interface Patch {
  readonly layer: number;
  readonly head: number;
  readonly component: Component;
}

const isHead = (p: Patch | undefined, h: { layer: number; head: number }): boolean => p?.layer === h.layer && p.head === h.head;

/**
 * log p(target) when the induction head's output is the average of the TOK vectors of `copies`
 * (equal scores, equal weights), with token overlaps idealised to 0; and the spread the ignored
 * overlaps add. ln_f is designed for a stream of norm 2 (token, position, previous token, one copied
 * token); the stream's norm is √(3 + |OUT|²), and the logit of copied token c is s·w_c·2/that.
 */
function idealLogProb(copies: number[], target: number): { value: number; sd: number } {
  if (copies.length === 0) return { value: -LOG_V, sd: 0 };
  const counts = new Map<number, number>();
  for (const c of copies) counts.set(c, (counts.get(c) ?? 0) + 1);
  let out2 = 0;
  for (const n of counts.values()) out2 += (n / copies.length) ** 2;
  const scale = 2 / Math.sqrt(3 + out2);
  let sum = V - counts.size;
  for (const n of counts.values()) sum += Math.exp((S * scale * n) / copies.length);
  const value = (S * scale * (counts.get(target) ?? 0)) / copies.length - Math.log(sum);
  // The target's logit picks up s·scale·⟨tok_target, OUT⟩ from the overlaps (each ~ N(0, 1/dTok)),
  // unless the target is all that was copied. The copied tokens' own logits err negligibly.
  const onlyTarget = counts.size === 1 && counts.has(target);
  return { value, sd: onlyTarget ? 0 : (S * scale * Math.sqrt(out2)) / Math.sqrt(C.dTok) };
}

/** The metric (mean over pairs of the mean over targets) the construction predicts for one patch. */
function ideal(pairs: readonly ResolvedPair[], patch?: Patch): { value: number; tol: number } {
  const prev = isHead(patch, C.prevTokenHead) ? patch!.component : undefined;
  const ind = isHead(patch, C.inductionHead) ? patch!.component : undefined;
  let total = 0;
  let variance = 0;
  for (const { clean: X, corrupted: Y, targets } of pairs) {
    // Token before position j as PREV holds it; null for j = 1 (BOS has no TOK part, so never matches).
    const prevSrc = prev === 'output' || prev === 'value' ? X : Y;
    const keyTok = (j: number): number | null => (j < 2 ? null : ind === 'key' ? X[j - 1]! : prevSrc[j - 1]!);
    const matches = (i: number, query: number, key: (j: number) => number | null): number[] => {
      const js: number[] = [];
      for (let j = 2; j <= i; j++) if (key(j) === query) js.push(j);
      return js;
    };
    const w = 1 / (pairs.length * targets!.length);
    for (const { pos: i, token } of targets!) {
      let copies: number[];
      if (ind === 'output') copies = matches(i, X[i]!, (j) => X[j - 1]!).map((j) => X[j]!);
      else if (ind === 'pattern') copies = matches(i, X[i]!, (j) => X[j - 1]!).map((j) => Y[j]!);
      else {
        const query = ind === 'query' ? X[i]! : Y[i]!;
        copies = matches(i, query, keyTok).map((j) => (ind === 'value' ? X[j]! : Y[j]!));
      }
      const r = idealLogProb(copies, token);
      total += w * r.value;
      variance += (w * r.sd) ** 2;
    }
  }
  // 5 standard deviations of the overlap noise, plus 0.1 for what the idealisation leaves out: the
  // sink's leak (~10⁻³ of the attention) and the distractors, which move the stream by ≤ 2ε = 0.02 in
  // a direction unrelated to the tokens, i.e. a target's logit by about s·2ε/√dTok ≈ 0.08 with
  // either sign, and the 76-target mean by far less.
  return { value: total, tol: 0.1 + 5 * Math.sqrt(variance) };
}

let cacheDir: string;
let modelDir: string;
let model: TestModel;
let tok: TextTokenizer;

before(async () => {
  cacheDir = makeTmpDir('induction-2l');
  modelDir = builtinModelDir('induction-2l', cacheDir);
  model = await loadTestModel(modelDir);
  tok = await loadTokenizer(modelDir, model.cfg);
});

// 100 MB per build: not kept for post-mortems like the small checkpoints.
after(() => rmSync(cacheDir, { recursive: true, force: true }));

function exampleSpec(corrupted: InductionPattern, sweeps: ResolvedSpec['sweeps']): ResolvedSpec {
  const file = join(__dirname, `../../examples/induction-${corrupted}.patch.json`);
  const text = readFileSync(file, 'utf8');
  return { ...resolveSpec(parseSpecText(text, file), tok, model.cfg, { file, text }), sweeps };
}

test('building twice gives byte-identical files', () => {
  const again = makeTmpDir('induction-2l-again');
  try {
    writeInduction2l(again);
    for (const f of ['model.safetensors', 'config.json', 'tokenizer.json']) {
      assert.ok(readFileSync(join(again, f)).equals(readFileSync(join(modelDir, f))), `${f} differs between two builds`);
    }
  } finally {
    rmSync(again, { recursive: true, force: true });
  }
});

test('the model is a GPT-2 checkpoint of the designed shape, with zero MLPs and an untied unembedding', () => {
  const { cfg, weights } = model;
  assert.deepEqual([cfg.nLayers, cfg.nHeads, cfg.dModel, cfg.dVocab, cfg.nCtx, cfg.bosTokenId], [C.nLayers, C.nHeads, C.dModel, C.dVocab, C.nCtx, 50256]);
  // The construction needs BOS + 2×20 tokens; n_ctx leaves room for longer repeats.
  assert.ok(cfg.nCtx >= 1 + 2 * 20);
  assert.notEqual(weights.unembed, weights.wte);
  for (const b of weights.blocks) {
    for (const t of [b.wIn!, b.bIn!, b.wOut!, b.bOut!]) assert.ok(t.data.every((x) => x === 0));
  }
});

interface Grid {
  baseline: number;
  /** [component][layer][head] */
  cell: (component: Component, layer: number, head: number) => number;
}

// Each run is ~40 patched forwards with 76 rows of 50257 logits each; the baseline test reuses AB's.
const runs = new Map<InductionPattern, Promise<{ spec: ResolvedSpec; out: PatchingOutcome }>>();
function sweepEvery(corrupted: InductionPattern): Promise<{ spec: ResolvedSpec; out: PatchingOutcome }> {
  let r = runs.get(corrupted);
  if (!r) {
    const spec = exampleSpec(corrupted, ['attn_head_out_all_pos', 'attn_head_all_pos_every']);
    r = runPatching(model.model, spec).then((out) => ({ spec, out }));
    runs.set(corrupted, r);
  }
  return r;
}

/** Runs the sweeps and checks every cell against `ideal`. */
async function checkEvery(corrupted: InductionPattern): Promise<{ grid: Grid; outAllPos: readonly number[] }> {
  const { spec, out } = await sweepEvery(corrupted);
  const every = out.sweeps.attn_head_all_pos_every!;
  assert.deepEqual(every.shape, [5, C.nLayers, C.nHeads]);
  assert.deepEqual(every.components, [...COMPONENTS]);
  const base = ideal(spec.pairs);
  assert.ok(Math.abs(out.baselines.corrupted! - base.value) <= base.tol, `${corrupted} baseline ${out.baselines.corrupted!}, construction says ${base.value}`);
  const grid: Grid = {
    baseline: out.baselines.corrupted!,
    cell: (c, l, h) => every.values[(COMPONENTS.indexOf(c) * C.nLayers + l) * C.nHeads + h]!,
  };
  // Every cell, constructed heads and distractors alike, is what the construction predicts.
  for (const component of COMPONENTS) {
    for (let layer = 0; layer < C.nLayers; layer++) {
      for (let head = 0; head < C.nHeads; head++) {
        const want = ideal(spec.pairs, { layer, head, component });
        const got = grid.cell(component, layer, head);
        assert.ok(Math.abs(got - want.value) <= want.tol, `${corrupted} ${component} L${layer}H${head}: ${got}, construction says ${want.value} ± ${want.tol}`);
      }
    }
  }
  // attn_head_out_all_pos is the output facet of the same patches.
  assert.deepEqual(out.sweeps.attn_head_out_all_pos!.values, every.values.slice(0, C.nLayers * C.nHeads));
  return { grid, outAllPos: out.sweeps.attn_head_out_all_pos!.values as number[] };
}

test("baselines on the notebook's setup: clean AA ≈ 0, AB ≈ −log(vocab)", async () => {
  const { spec, out } = await sweepEvery('AB');
  // Clean: every target is copied alone; the other 50256 logits sit at s·N(0, 1/63), so
  // log p ≈ −50257·E[e^{s·x}]·e^{−s} = −50257·cosh(s/63)^63·e^{−30} ≈ −10⁻⁵ per target.
  assert.ok(out.baselines.clean > -0.01 && out.baselines.clean <= 0, `clean ${out.baselines.clean}`);
  // AB: the second half's tokens never occurred before, so the head rests on BOS and all logits are 0,
  // except where the random tokens repeat within B (then it copies a wrong token: −30 instead of
  // −10.8, costing (30 − 10.8)/76 ≈ 0.25 each). The ideal evaluation counts those repeats exactly.
  const want = ideal(spec.pairs);
  assert.ok(Math.abs(out.baselines.corrupted! - want.value) <= want.tol, `AB ${out.baselines.corrupted!}, construction says ${want.value} ± ${want.tol}`);
  assert.ok(Math.abs(out.baselines.corrupted! + LOG_V) < 0.5, `AB ${out.baselines.corrupted!} is not near −log(${V})`);
});

const P = C.prevTokenHead;
const I = C.inductionHead;
const key = (l: number, h: number): string => `L${l}H${h}`;
// "Restores": within 1 of the clean ≈ 0, when the alternatives are −10.8 (nothing copied) or −30.
const RESTORES = -1;
// "Does not restore": no better than copying nothing.
const NOT_RESTORED = -LOG_V + 1;

/** Heads by |effect| on the output patch, largest first. */
function rankHeads(values: readonly number[], baseline: number): { name: string; effect: number }[] {
  return values.map((v, i) => ({ name: key(Math.floor(i / C.nHeads), i % C.nHeads), effect: v - baseline })).sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect));
}

test('BB (another sequence, repeated): value patching of the induction head restores; key, query and pattern do not', async () => {
  const { grid, outAllPos } = await checkEvery('BB');
  // BB is still induction, on B: the corrupted run copies B's next token confidently (≈ −30).
  assert.ok(grid.baseline < -20, `BB baseline ${grid.baseline}`);
  // The head attends to the same positions in both runs (after the first occurrence of the current
  // token), so the clean pattern is the corrupted one: no change. Clean values at those positions are
  // A's tokens: restored. A clean query (A's token) or clean keys (A's previous tokens) against the
  // other run's B find no match: the head falls back to BOS, −10.8 — a change, but not a restoration.
  assert.ok(grid.cell('value', I.layer, I.head) > RESTORES);
  assert.ok(grid.cell('output', I.layer, I.head) > RESTORES);
  for (const c of ['query', 'key', 'pattern'] as const) assert.ok(grid.cell(c, I.layer, I.head) < NOT_RESTORED, c);
  // (Not exactly: where B repeats a token and A does not, the corrupted head splits its attention and
  // the clean one doesn't; `ideal` has checked that to the decimal already.)
  assert.ok(Math.abs(grid.cell('pattern', I.layer, I.head) - grid.baseline) < 1);
  // The previous-token head's output and value make the keys A's, the query stays B's: back to BOS.
  // So the two largest output effects are exactly the two constructed heads; the distractors' ≈ 0.
  const ranked = rankHeads(outAllPos, grid.baseline);
  assert.deepEqual(new Set(ranked.slice(0, 2).map((r) => r.name)), new Set([key(P.layer, P.head), key(I.layer, I.head)]));
  assert.ok(ranked.slice(0, 2).every((r) => r.effect > 8));
  assert.ok(
    ranked.slice(2).every((r) => Math.abs(r.effect) < 0.1),
    JSON.stringify(ranked),
  );
});

test('BC (all random): only the output of the induction head restores', async () => {
  const { grid } = await checkEvery('BC');
  // Nothing repeats, so the head needs clean queries, keys and values at once; any one of them alone
  // finds no match (−10.8). A clean pattern points at the right positions but copies B's tokens there
  // (−30). Only the clean output carries the copied A tokens.
  assert.ok(grid.cell('output', I.layer, I.head) > RESTORES);
  for (const c of COMPONENTS) {
    for (let l = 0; l < C.nLayers; l++) {
      for (let h = 0; h < C.nHeads; h++) {
        if (c === 'output' && l === I.layer && h === I.head) continue;
        assert.ok(grid.cell(c, l, h) < NOT_RESTORED, `${c} L${l}H${h}: ${grid.cell(c, l, h)}`);
      }
    }
  }
  assert.ok(grid.cell('pattern', I.layer, I.head) < -20);
});

test('BA (first half new): output restores; value and query change nothing; keys and pattern make it worse', async () => {
  const { grid, outAllPos } = await checkEvery('BA');
  // The notebook: "a corrupted first half, so we expect both keys and values to matter. Head output
  // patching should work, but value and key and pattern won't." Here precisely: the second half (the
  // queries) is A in both runs, so a clean query is the corrupted one. The corrupted keys (B's
  // previous tokens) match nothing, so clean values alone are never read. Clean keys or a clean
  // pattern attend to the right positions, whose corrupted values are B's tokens: −30, worse than the
  // −10.8 baseline. The previous-token head's clean output does the same through the keys.
  assert.ok(grid.cell('output', I.layer, I.head) > RESTORES);
  assert.ok(Math.abs(grid.cell('value', I.layer, I.head) - grid.baseline) < 0.1);
  assert.ok(Math.abs(grid.cell('query', I.layer, I.head) - grid.baseline) < 0.1);
  assert.ok(grid.cell('key', I.layer, I.head) < grid.baseline - 8);
  assert.ok(grid.cell('pattern', I.layer, I.head) < grid.baseline - 8);
  assert.ok(grid.cell('output', P.layer, P.head) < grid.baseline - 8);
  const ranked = rankHeads(outAllPos, grid.baseline);
  assert.deepEqual(new Set(ranked.slice(0, 2).map((r) => r.name)), new Set([key(P.layer, P.head), key(I.layer, I.head)]));
  assert.ok(
    ranked.slice(2).every((r) => Math.abs(r.effect) < 0.1),
    JSON.stringify(ranked),
  );
});

test('AB (second half new): clean output, query or pattern of the induction head restore; keys and values do not', async () => {
  const { grid, outAllPos } = await checkEvery('AB');
  // The first half, and with it every key and value the clean run used, is intact. A clean query (A's
  // token) finds its match there and copies the right token, and so does the clean pattern. Clean
  // keys or values cannot help a B query that matches nothing. The previous-token head only changes
  // second-half keys, which no B query matches either: its output is (up to B's own repeats) inert,
  // which is why the notebook's AB plots show the induction heads and not the previous-token heads.
  for (const c of ['output', 'query', 'pattern'] as const) assert.ok(grid.cell(c, I.layer, I.head) > RESTORES, c);
  for (const c of ['key', 'value'] as const) assert.ok(grid.cell(c, I.layer, I.head) < NOT_RESTORED, c);
  const ranked = rankHeads(outAllPos, grid.baseline);
  assert.equal(ranked[0]!.name, key(I.layer, I.head));
  assert.ok(
    ranked.slice(1).every((r) => Math.abs(r.effect) < 1),
    JSON.stringify(ranked),
  );
});
