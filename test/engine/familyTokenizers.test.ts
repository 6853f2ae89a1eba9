/**
 * Tokenizers and BOS per family, as TransformerLens has them: each hub format's tokenizer.json read by
 * @huggingface/tokenizers (token strings and character ranges right for SentencePiece and byte-level
 * vocabularies), the BOS token taken from the tokenizer's own files, the prepend default from the family,
 * a spec resolved against each, and the result file of a run on a grouped-query model.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint } from '../../src/engine/model/checkpoint';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import { ModelCache } from '../../src/engine/modelLoader';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { runSpec } from '../../src/engine/runSpec';
import { UserError } from '../../src/common/userError';
import type { PatchResult } from '../../src/protocol/result';
import type { PatchSpec } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { type LlamaArch, writeRandomLlamaCheckpoint } from '../helpers/checkpoints/llama';
import { BYTE_LEVEL_SPECIALS, type FamilyTokenizer, familyTokenizerVocab, writeFamilyTokenizer } from '../helpers/tokenizers';

/** A tiny checkpoint of `arch` with `kind`'s tokenizer files, loaded as the engine loads a model folder. */
async function modelWith(arch: LlamaArch, kind: FamilyTokenizer) {
  const dir = makeTmpDir(`tok-${arch}-${kind}`);
  writeRandomLlamaCheckpoint(dir, { arch, nLayers: 1, nHeads: 2, nKvHeads: 1, dModel: 8, dMlp: 8, dVocab: familyTokenizerVocab(kind), nCtx: 64, seed: 3 });
  writeFamilyTokenizer(dir, kind);
  const { config } = loadCheckpoint(dir);
  return { dir, config, tok: await loadTokenizer(dir, config) };
}

const TEXT = 'Hello world, Alice went to the store.\nAlice gave Bob a drink 😀 ünï';

/** Every token's range in the text: each starts where the previous ended, or both hold part of one split character. */
function assertTiles(text: string, ranges: [number, number][]): void {
  assert.equal(ranges.at(-1)![1], text.length);
  for (let i = 1; i < ranges.length; i++) {
    const [a0, a1] = ranges[i - 1]!;
    const [b0, b1] = ranges[i]!;
    assert.ok(b0 === a1 || (b0 < a1 && b1 >= a1 && b0 >= a0), `token ${i}: [${a0},${a1}) then [${b0},${b1})`);
  }
}

for (const kind of ['llama2', 'llama2-metaspace'] as const) {
  test(`${kind} (SentencePiece BPE with byte fallback): pieces, '▁' shown as a space, ranges that point at the characters, BOS <s>`, async () => {
    const { tok } = await modelWith('llama', kind);
    const e = tok.encode(TEXT);
    const strings = e.ids.map((id) => tok.tokenString(id));
    const pieces = e.ranges.map(([a, b]) => TEXT.slice(a, b));
    // The words of the vocabulary are one token each with their word-start marker; '\n', the emoji and 'ï'
    // fall back to UTF-8 bytes, each byte token pointing at its whole character.
    assert.deepEqual(strings.slice(0, 10), [' Hello', ' world', ',', ' Alice', ' went', ' to', ' the', ' store', '.', '\n']);
    assert.deepEqual(pieces.slice(0, 10), ['Hello', ' world', ',', ' Alice', ' went', ' to', ' the', ' store', '.', '\n']);
    assert.deepEqual(pieces.slice(-10), [' ', '😀', '😀', '😀', '😀', ' ', 'ü', 'n', 'ï', 'ï']);
    assert.deepEqual(strings.slice(-10, -6), [' ', '\ufffd', '\ufffd', '\ufffd']);
    // After the first token, whose marker the tokenizer put there itself, each token's string is its text.
    strings.forEach((s, i) => i > 0 && !/\ufffd/.test(s) && assert.equal(s, pieces[i], `token ${i}`));
    assertTiles(TEXT, e.ranges);
    assert.equal(tok.decode(e.ids), TEXT);
    assert.equal(tok.bosTokenId, 1);
    assert.equal(tok.tokenString(1), '<s>');
  });
}

test("gemma (SentencePiece BPE, spaces replaced, no '▁' put before the text): pieces, ranges, the template's <bos> not added, BOS <bos>", async () => {
  const { tok } = await modelWith('gemma2', 'gemma');
  const e = tok.encode(TEXT);
  const strings = e.ids.map((id) => tok.tokenString(id));
  const pieces = e.ranges.map(([a, b]) => TEXT.slice(a, b));
  // The text's first word has no word-start marker, so it is not the vocabulary's '▁Hello' but its letters
  // (real Gemma vocabularies hold both); the template's <bos> is TransformerLens's to add, not the encoder's.
  assert.deepEqual(strings.slice(0, 10), ['H', 'e', 'l', 'l', 'o', ' world', ',', ' Alice', ' went', ' to']);
  assert.deepEqual(pieces.slice(0, 10), strings.slice(0, 10));
  assert.deepEqual(pieces.slice(-10), [' ', '😀', '😀', '😀', '😀', ' ', 'ü', 'n', 'ï', 'ï']);
  strings.forEach((s, i) => !/\ufffd/.test(s) && assert.equal(s, pieces[i], `token ${i}`));
  assertTiles(TEXT, e.ranges);
  assert.equal(tok.decode(e.ids), TEXT);
  assert.equal(tok.bosTokenId, 2);
  assert.equal(tok.tokenString(2), '<bos>');
});

for (const [kind, arch, bos, bosText] of [
  ['llama3', 'llama', BYTE_LEVEL_SPECIALS.first, '<|begin_of_text|>'],
  // Qwen's tokenizer has no BOS token; TransformerLens then uses its EOS token, <|endoftext|>.
  ['qwen2', 'qwen2', BYTE_LEVEL_SPECIALS.first, '<|endoftext|>'],
  // OLMo 2's names <|endoftext|> as its BOS (and EOS) without adding it; TransformerLens prepends it.
  ['olmo2', 'olmo2', BYTE_LEVEL_SPECIALS.first, '<|endoftext|>'],
] as const) {
  test(`${kind} (byte-level BPE): ranges tile the text, BOS is ${bosText}`, async () => {
    const { tok } = await modelWith(arch, kind);
    const e = tok.encode(TEXT);
    assert.deepEqual(
      e.ranges.slice(0, 4).map(([a, b]) => TEXT.slice(a, b)),
      ['Hello', ' world', ',', ' Alice'],
    );
    e.ids.forEach((id, i) => !/\ufffd/.test(tok.tokenString(id)) && assert.equal(tok.tokenString(id), TEXT.slice(...e.ranges[i]!)));
    assertTiles(TEXT, e.ranges);
    assert.equal(tok.bosTokenId, bos);
    assert.equal(tok.tokenString(bos), bosText);
  });
}

test("the BOS id comes from the tokenizer's files: bos_token, else the template's first token, else eos_token, else config.json", async () => {
  const { dir, config } = await modelWith('llama', 'llama3');
  const configPath = join(dir, 'tokenizer_config.json');
  const original = JSON.parse(readFileSync(configPath, 'utf8'));
  const bosWith = async (tokenizerConfig: Record<string, unknown> | undefined) => {
    if (tokenizerConfig) writeFileSync(configPath, JSON.stringify(tokenizerConfig));
    else rmSync(configPath, { force: true });
    return (await loadTokenizer(dir, config)).bosTokenId;
  };
  assert.equal(await bosWith(original), BYTE_LEVEL_SPECIALS.first);
  assert.equal(await bosWith({ ...original, bos_token: { content: '<|end_of_text|>', __type: 'AddedToken' } }), BYTE_LEVEL_SPECIALS.second, 'an AddedToken object');
  assert.equal(await bosWith({ ...original, bos_token: null }), BYTE_LEVEL_SPECIALS.first, "the post-processor's template");
  assert.equal(await bosWith(undefined), BYTE_LEVEL_SPECIALS.first, 'no tokenizer_config.json: the template');
  await assert.rejects(bosWith({ ...original, bos_token: '<|nope|>' }), (e: Error) => e instanceof UserError && /BOS token "<\|nope\|>".*not in the tokenizer/.test(e.message));
  // Another model's tokenizer: its BOS is refused where it would be prepended.
  const small = { ...config, dVocab: 1000 };
  const induction: PatchSpec = { metric: 'answer_logprob', sweeps: ['resid_pre'], induction: { seed: 1, corrupted: 'BA', token_range: [10, 20] } };
  await bosWith(original);
  const other = await loadTokenizer(dir, small);
  assert.throws(() => resolveSpec(induction, other, small, { file: 'x.patch.json' }), /BOS token is id 50257, outside the model's vocabulary \[0, 1000\)/);

  const q = await modelWith('qwen2', 'qwen2');
  rmSync(join(q.dir, 'tokenizer_config.json'));
  assert.equal((await loadTokenizer(q.dir, q.config)).bosTokenId, q.config.bosTokenId, "neither file names one: config.json's bos_token_id");
  assert.equal(q.config.bosTokenId, familyTokenizerVocab('qwen2') - 1);
});

const pair = (extra: Record<string, unknown> = {}): PatchSpec => ({
  metric: 'logit_diff',
  sweeps: ['resid_pre'],
  pairs: [{ clean: 'Alice gave Bob a drink', corrupted: 'Alice gave Mary a drink', answer: 'Alice', wrong: 'Bob' }],
  ...extra,
});

test("a spec resolves with the family's BOS and prepend default: Llama prepends <s> / <|begin_of_text|>, Gemma <bos>, OLMo 2 <|endoftext|>, Qwen2 and Qwen3 nothing unless asked", async () => {
  for (const [arch, kind, prepends, bos] of [
    ['llama', 'llama2', true, 1],
    ['llama', 'llama3', true, BYTE_LEVEL_SPECIALS.first],
    ['mistral', 'llama2-metaspace', true, 1],
    ['qwen2', 'qwen2', false, BYTE_LEVEL_SPECIALS.first],
    ['qwen3', 'qwen2', false, BYTE_LEVEL_SPECIALS.first],
    ['gemma2', 'gemma', true, 2],
    ['gemma3_text', 'gemma', true, 2],
    ['olmo2', 'olmo2', true, BYTE_LEVEL_SPECIALS.first],
  ] as const) {
    const { tok, config } = await modelWith(arch, kind);
    const words = kind.startsWith('llama2') ? { answer: 'Alice', wrong: 'Bob' } : { answer: ' Alice', wrong: ' Bob' };
    const spec = pair();
    spec.pairs![0] = { ...spec.pairs![0]!, ...words };
    const r = resolveSpec(spec, tok, config, { file: 'x.patch.json' });
    const ids = tok.encode('Alice gave Bob a drink').ids;
    assert.equal(r.prependBos, prepends, `${kind}: TransformerLens's default_prepend_bos`);
    assert.deepEqual(r.pairs[0]!.clean, prepends ? [bos, ...ids] : ids, kind);
    assert.equal(r.pairs[0]!.cleanRanges![0], prepends ? null : r.pairs[0]!.cleanRanges![0]);
    assert.equal(r.pairs[0]!.answer, tok.encode(words.answer).ids[0]);
    const forced = resolveSpec(pair({ prepend_bos: !prepends, pairs: spec.pairs }), tok, config, { file: 'x.patch.json' });
    assert.deepEqual(forced.pairs[0]!.clean, prepends ? ids : [bos, ...ids], `${kind}: prepend_bos given`);
  }
});

test("answer checks: on Llama 2's SentencePiece vocabulary ' Alice' is two tokens and the message says to drop the space; on byte-level ones and Gemma's to add it", async () => {
  const sp = await modelWith('llama', 'llama2');
  const spaced = pair();
  spaced.pairs![0] = { ...spaced.pairs![0]!, answer: ' Alice' };
  assert.throws(
    () => resolveSpec(spaced, sp.tok, sp.config, { file: 'x.patch.json' }),
    (e: Error) => {
      assert.match(e.message, /pairs\[0\]\.answer ' Alice' is 2 tokens \[' ' ' Alice'\].*drop the leading space: 'Alice' is one token/);
      return true;
    },
  );
  const bl = await modelWith('llama', 'llama3');
  const bare = pair();
  bare.pairs![0] = { ...bare.pairs![0]!, answer: 'drink' };
  assert.throws(() => resolveSpec(bare, bl.tok, bl.config, { file: 'x.patch.json' }), /add a leading space: ' drink' is one token/);
  // Gemma's SentencePiece vocabulary puts no marker before the text: there, as on byte-level ones, the space belongs to the word.
  const gemma = await modelWith('gemma2', 'gemma');
  const unspaced = pair();
  unspaced.pairs![0] = { ...unspaced.pairs![0]!, answer: 'Alice' };
  assert.throws(() => resolveSpec(unspaced, gemma.tok, gemma.config, { file: 'x.patch.json' }), /'Alice' is 5 tokens .*add a leading space: ' Alice' is one token/);
});

test('the result file of a run on a GQA Llama records the family, n_key_value_heads, the stored dtype and null KV cells', async () => {
  const dir = makeTmpDir('llama-result');
  writeRandomLlamaCheckpoint(join(dir, 'model'), {
    arch: 'llama',
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    dModel: 16,
    dMlp: 16,
    dVocab: familyTokenizerVocab('llama2'),
    nCtx: 64,
    seed: 5,
    dtype: 'BF16',
  });
  writeFamilyTokenizer(join(dir, 'model'), 'llama2');
  const specFile = join(dir, 'gqa.patch.json');
  writeFileSync(
    specFile,
    JSON.stringify({ ...pair(), model: 'model', sweeps: ['attn_head_k_all_pos', 'attn_head_all_pos_every'], pairs: [{ ...pair().pairs![0], answer: 'Alice', wrong: 'Bob' }] }),
  );
  const outcome = await runSpec({ runId: 'r', specFile, device: 'cpu' }, { models: new ModelCache() });
  const result = JSON.parse(readFileSync(outcome.resultPath, 'utf8')) as PatchResult;
  assert.equal(result.model.architecture, 'llama');
  assert.equal(result.model.weightsDtype, 'BF16');
  assert.deepEqual({ nHeads: result.model.config?.nHeads, nKvHeads: result.model.config?.nKvHeads }, { nHeads: 4, nKvHeads: 2 });
  assert.deepEqual(result.sweeps.attn_head_k_all_pos!.axes, ['layer', 'kv_head']);
  assert.deepEqual(result.sweeps.attn_head_k_all_pos!.shape, [2, 2]);
  const every = result.sweeps.attn_head_all_pos_every!;
  assert.deepEqual(every.shape, [5, 2, 4]);
  // Components key and value (2, 3), heads 2 and 3: not key/value heads of this model.
  every.values.forEach((v, i) => {
    const [c, , h] = [Math.floor(i / 8), Math.floor(i / 4) % 2, i % 4];
    assert.equal(v === null, (c === 2 || c === 3) && h >= 2, `value ${i}`);
  });
  assert.equal(result.tokens[0]!.clean.strings[0], '<s>');
  assert.equal(result.tokens[0]!.clean.ranges[0], null);
});
