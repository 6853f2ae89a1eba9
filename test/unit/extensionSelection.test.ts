import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toDocumentRange } from '../../src/protocol/spec';
import { parseSpecText } from '../../src/spec/parseSpec';
import { SpecError } from '../../src/spec/specError';
import {
  answerCandidates,
  describeTokens,
  maskOutside,
  readSelection,
  selectionRunName,
  selectionSource,
  singleTokenForms,
  specDefaultName,
} from '../../src/extension/promptSources';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import { makeTmpDir } from '../helpers/checkpoint';
import { type FamilyTokenizer, familyTokenizerVocab, writeFamilyTokenizer } from '../helpers/tokenizers';

const DOC = 'Notes\r\nWhen Mary and John went out, John gave it to\r\nWhen Mary and John went out, Mary gave it to\r\nmore notes\r\n';

test('two selected lines become a clean and a corrupted prompt at their document offsets', () => {
  const start = DOC.indexOf('When');
  const end = DOC.indexOf('more');
  const r = readSelection(DOC, start, end);
  assert.equal(r.kind, 'prompts');
  if (r.kind !== 'prompts') return;
  assert.equal(r.clean.text, 'When Mary and John went out, John gave it to');
  assert.equal(r.corrupted.text, 'When Mary and John went out, Mary gave it to');
  assert.equal(DOC.slice(r.clean.offset, r.clean.offset + r.clean.text.length), r.clean.text);
  assert.equal(DOC.slice(r.corrupted.offset, r.corrupted.offset + r.corrupted.text.length), r.corrupted.text);
  // A token's range in the prompt maps to the same characters in the document.
  const word = r.corrupted.text.indexOf(' Mary gave');
  const [a, b] = toDocumentRange(r.corrupted, [word, word + 5]);
  assert.equal(DOC.slice(a, b), ' Mary');
});

test('the selection spec carries the prompts, answers, sweeps and per-prompt sources', () => {
  const r = readSelection(DOC, DOC.indexOf('When'), DOC.indexOf('more'));
  if (r.kind !== 'prompts') throw new Error('prompts expected');
  const s = selectionSource('/ws/notes.txt', r.clean, r.corrupted, { model: 'gpt2', answer: ' Mary', wrong: ' John', sweeps: ['resid_pre', 'block_every'], name: 'notes.txt-L2' });
  assert.equal(s.document, '/ws/notes.txt');
  assert.deepEqual(s.spec, {
    name: 'notes.txt-L2',
    model: 'gpt2',
    metric: 'logit_diff',
    sweeps: ['resid_pre', 'block_every'],
    pairs: [{ clean: r.clean.text, corrupted: r.corrupted.text, answer: ' Mary', wrong: ' John' }],
  });
  assert.deepEqual(s.sources, [{ clean: r.clean, corrupted: r.corrupted }]);
  // What the engine re-parses must be a valid spec.
  assert.deepEqual(parseSpecText(JSON.stringify(s.spec), '/ws/notes.txt'), s.spec);
  // A metric without a wrong answer does not carry one.
  const p = selectionSource('/ws/notes.txt', r.clean, r.corrupted, { model: 'gpt2', answer: ' Mary', wrong: ' John', sweeps: ['resid_pre'], name: 'n', metric: 'answer_logprob' });
  assert.equal(p.spec.pairs![0]!.wrong, undefined);
});

test("a selected JSON object is run as a spec whose offsets and lines are the document's", () => {
  const doc =
    '# experiment\n\n```json\n{ "model": "gpt2", "metric": "logit_diff", "sweeps": ["resid_pre"],\n  "pairs": [{ "clean": "a b", "corrupted": "a c", "answer": " x", "wrong": " y" }] }\n```\n';
  const start = doc.indexOf('{');
  const end = doc.lastIndexOf('}') + 1;
  const r = readSelection(doc, start, end);
  assert.equal(r.kind, 'spec');
  if (r.kind !== 'spec') return;
  assert.equal(r.spec.model, 'gpt2');
  assert.equal(r.specText.length, doc.length);
  assert.equal(r.specText.split('\n').length, doc.split('\n').length);
  assert.equal(r.specText.indexOf('"a b"'), doc.indexOf('"a b"'));
  assert.match(r.specText.slice(0, start), /^[ \n]*$/);
  assert.deepEqual(parseSpecText(r.specText, '/ws/notes.md'), r.spec);
});

test('maskOutside keeps line breaks and length', () => {
  assert.equal(maskOutside('ab\ncd\r\nef', 3, 5), '  \ncd\r\n  ');
});

test('a selection that is neither form is a one-line error naming the forms', () => {
  assert.throws(
    () => readSelection(DOC, DOC.indexOf('When'), DOC.indexOf('John')),
    (e: unknown) => e instanceof SpecError && /only one line is selected/.test(e.message) && !e.message.includes('\n'),
  );
});

test('answer candidates are the words where the prompts differ, with their leading space', () => {
  assert.deepEqual(answerCandidates('When Mary and John went out, John gave it to', 'When Mary and John went out, Mary gave it to'), [' John', ' Mary']);
  assert.deepEqual(answerCandidates('The Eiffel Tower is in', 'The Colosseum is in').slice(0, 3), [' Eiffel', ' Tower', ' Colosseum']);
  assert.deepEqual(answerCandidates('same', 'same'), []);
});

test('candidates take the form that is one token: without the space on a SentencePiece vocabulary (Llama 2), with it on a byte-level one', async () => {
  const candidates = answerCandidates('Alice gave a drink to', 'Bob gave a drink to');
  for (const [kind, want] of [
    ['llama2', ['Alice', 'Bob']],
    ['llama3', [' Alice', ' Bob']],
  ] as [FamilyTokenizer, string[]][]) {
    const dir = makeTmpDir(`candidates-${kind}`);
    writeFamilyTokenizer(dir, kind);
    const tok = await loadTokenizer(dir, { architecture: 'llama', dVocab: familyTokenizerVocab(kind), bosTokenId: 0 });
    assert.deepEqual(await singleTokenForms(candidates, async (t) => tok.encode(t)), want, kind);
  }
  assert.deepEqual(await singleTokenForms(candidates, () => Promise.reject(new Error('no engine'))), candidates, 'kept when the engine cannot tokenize');
});

test('tokenization is described as the answer box shows it', () => {
  assert.equal(describeTokens(' Alice', { ids: [14862], strings: [' Alice'] }), '" Alice" → 1 token [14862]');
  assert.equal(describeTokens('Alicia', { ids: [2348, 24914], strings: ['Al', 'icia'] }), '"Alicia" → 2 tokens "Al" "icia" [2348, 24914]');
});

test('run names', () => {
  assert.equal(selectionRunName('/ws/notes.txt', 3), 'notes.txt-L3');
  assert.equal(selectionRunName('untitled:Untitled-1', 1), 'Untitled-1-L1');
  assert.equal(specDefaultName('/ws/ioi.patch.json'), 'ioi');
  assert.equal(specDefaultName('/ws/ioi.json'), 'ioi');
  assert.equal(specDefaultName('/ws/notes.md'), 'notes.md');
});
