// The spec examples against GPT-2's real tokenizer: the notebook's pair is refused for its unequal
// lengths, the corrected pair resolves, and token ranges land on the right characters of the file.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT2_EOT_ID, writeGpt2TokenizerFiles } from '../../src/engine/model/gpt2Tokenizer';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import type { TextTokenizer } from '../../src/engine/model/tokenizer';
import { parseSelection } from '../../src/spec/selection';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseSpecText } from '../../src/spec/parseSpec';
import { isUserError } from '../../src/common/userError';
import { toDocumentRange } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { GPT2_SMALL_CONFIG } from '../helpers/configs';

const EXAMPLES = join(__dirname, '..', '..', 'examples');

const GPT2 = GPT2_SMALL_CONFIG;

let tok: TextTokenizer;
before(async () => {
  const dir = makeTmpDir('spec-tok');
  writeGpt2TokenizerFiles(dir);
  tok = await loadTokenizer(dir, GPT2);
});

function example(name: string) {
  const file = join(EXAMPLES, name);
  const text = readFileSync(file, 'utf8');
  return { file, text, spec: parseSpecText(text, file) };
}

test("the notebook's speaker pair is refused: the corrupted prompt drops the names and is shorter", () => {
  const { file, text, spec } = example('speaker-notebook.patch.json');
  let message = '';
  try {
    resolveSpec(spec, tok, GPT2, { file, text });
  } catch (e) {
    assert.ok(isUserError(e));
    message = e.message;
  }
  assert.equal(message.split('\n').length, 1);
  assert.match(
    message,
    /speaker-notebook\.patch\.json:\d+:\d+: pairs\[0\]: clean has 21 tokens, corrupted has 15; position-wise patching needs the clean and corrupted prompts to have the same number of tokens — make them tokenize to the same length \(e\.g\. swap names rather than remove them\)/,
  );
  // Both tokenizations, from just before where they part.
  assert.match(message, /clean \['<\|endoftext\|>' 'Alice' ':' .*\] vs corrupted \['<\|endoftext\|>' 'Hi' '!' /);
});

test('the corrected speaker pair resolves: equal lengths, single-token answers, ranges on the file text', () => {
  const { file, text, spec } = example('speaker.patch.json');
  const r = resolveSpec(spec, tok, GPT2, { file, text });
  assert.equal(r.name, 'speaker');
  assert.equal(r.model, 'gpt2');
  assert.deepEqual(r.sweeps, ['resid_pre', 'attn_head_out_all_pos', 'attn_head_out_by_pos', 'block_every']);
  const p = r.pairs[0]!;
  assert.equal(p.clean.length, 21);
  assert.equal(p.corrupted.length, 21);
  assert.equal(p.clean[0], GPT2_EOT_ID);
  assert.equal(p.corrupted[0], GPT2_EOT_ID);
  assert.deepEqual([p.answer, p.wrong], [tok.encode(' Alice').ids[0], tok.encode(' Bob').ids[0]]);
  // The names are swapped: the clean answer is the corrupted prompt's wrong one, and vice versa.
  assert.equal(
    spec.pairs![0]!.corrupted!.replace(/Alice|Bob/g, (m) => (m === 'Alice' ? 'Bob' : 'Alice')),
    spec.pairs![0]!.clean,
  );
  // Positions where the two differ: exactly the name tokens.
  const diff = p.clean.flatMap((id, i) => (id === p.corrupted[i] ? [] : [i]));
  assert.deepEqual(
    diff.map((i) => tok.tokenString(p.clean[i]!)),
    ['Alice', ' Bob', 'Bob'],
  );
  // Ranges are document offsets; the '\n' token covers the two characters of its JSON escape.
  const shown = p.cleanRanges!.slice(1).map((rg) => text.slice(rg![0], rg![1]));
  assert.equal(shown.join(''), JSON.stringify(spec.pairs![0]!.clean).slice(1, -1));
  assert.ok(shown.includes('\\n'));
  assert.equal(p.cleanRanges![0], null);
});

test('an answer that is two tokens, or lacks its leading space, gets a one-line hint', () => {
  const { file, spec } = example('speaker.patch.json');
  const pair = spec.pairs![0]!;
  const run = (answer: string) => {
    try {
      resolveSpec({ ...spec, pairs: [{ ...pair, answer }] }, tok, GPT2, { file });
    } catch (e) {
      assert.ok(isUserError(e));
      assert.equal(e.message.split('\n').length, 1);
      return e.message;
    }
    assert.fail('no error');
  };
  assert.match(run(' Alice Smith'), /pairs\[0\]\.answer ' Alice Smith' is 2 tokens \[' Alice' ' Smith'\], but an answer must be exactly one token/);
  // 'Alicia' without a space is two tokens in GPT-2, ' Alicia' one.
  const bare = tok.encode('Alicia').ids.length;
  if (bare > 1 && tok.encode(' Alicia').ids.length === 1) {
    assert.match(run('Alicia'), /add a leading space: ' Alicia' is one token/);
  }
});

test('a two-line selection resolves with document ranges through resolveSpec sources', () => {
  const doc = '# notes\nWhen Mary and John went to the store, John gave a drink to\nWhen Mary and John went to the store, Mary gave a drink to\n';
  const offset = doc.indexOf('When');
  const sel = parseSelection(doc.slice(offset), offset);
  assert.ok('clean' in sel);
  const r = resolveSpec(
    { metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: sel.clean.text, corrupted: sel.corrupted.text, answer: ' Mary', wrong: ' John' }] },
    tok,
    GPT2,
    { file: 'selection', sources: [{ clean: sel.clean, corrupted: sel.corrupted }] },
  );
  const p = r.pairs[0]!;
  assert.equal(p.clean.length, p.corrupted.length);
  assert.deepEqual(
    p.corruptedRanges!.slice(1).map((rg) => doc.slice(rg![0], rg![1])),
    p.corrupted.slice(1).map((id) => tok.tokenString(id)),
  );
  assert.deepEqual(toDocumentRange(sel.clean, [0, 4]), [offset, offset + 4]);
});

test("the IOI example's dataset resolves against GPT-2's tokenizer: one-token names, equal lengths within a pair, labels on the names", () => {
  const { file, text, spec } = example('ioi-template.patch.json');
  const r = resolveSpec(spec, tok, GPT2, { file, text });
  assert.equal(r.pairs.length, 12);
  assert.deepEqual([...r.labels!].sort(), ['END', 'IO', 'S1', 'S2']);
  assert.equal(new Set(r.pairs.map((p) => p.clean.length)).size, 4);
  for (const [i, p] of r.pairs.entries()) {
    assert.equal(p.clean.length, p.corrupted.length, `pair ${i}`);
    const at = (label: string) => p.labels![label]!.map((k) => tok.tokenString(p.clean[k]!));
    assert.deepEqual(at('IO'), [tok.tokenString(p.answer!)], `pair ${i}`);
    assert.deepEqual(at('S1'), [tok.tokenString(p.wrong!)], `pair ${i}`);
    assert.deepEqual(at('S2'), [tok.tokenString(p.wrong!)], `pair ${i}`);
    assert.deepEqual(at('END'), [' to'], `pair ${i}`);
    assert.deepEqual(p.labels!.END, [p.clean.length - 1], `pair ${i}: END is the last token`);
    // The corrupted prompt differs at the three names only (the IOI paper's ABC).
    const diff = p.clean.flatMap((id, k) => (id === p.corrupted[k] ? [] : [k]));
    assert.deepEqual(
      diff,
      [...p.labels!.S1!, ...p.labels!.IO!, ...p.labels!.S2!].sort((a, b) => a - b),
      `pair ${i}`,
    );
  }
});
