import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sourceOffset, toDocumentRange, type SourceText } from '../../src/protocol/spec';
import { parseSelection, type SelectionPrompts, type SelectionSpec } from '../../src/spec/selection';
import { SpecError } from '../../src/spec/specError';
import { isUserError } from '../../src/common/userError';

function prompts(text: string, offset = 0): SelectionPrompts {
  const r = parseSelection(text, offset);
  assert.ok('clean' in r, 'expected two prompts');
  return r;
}

function userError(f: () => unknown): SpecError {
  try {
    f();
  } catch (e) {
    assert.ok(isUserError(e) && e instanceof SpecError, `expected a SpecError, got ${String(e)}`);
    assert.equal(e.message.split('\n').length, 1, `not one line: ${e.message}`);
    return e;
  }
  assert.fail('expected an error');
}

/** The document text under a prompt, character by character through its offsets. */
function underlying(doc: string, src: SourceText): string {
  return doc.slice(sourceOffset(src, 0), sourceOffset(src, src.text.length));
}

test('two lines: clean then corrupted, with document offsets', () => {
  const doc = 'xx\nWhen Alice met Bob, Bob thanked\nWhen Alice met Bob, Alice thanked\nyy';
  const start = 3;
  const sel = doc.slice(start, doc.length - 3);
  const r = prompts(sel, start);
  assert.equal(r.clean.text, 'When Alice met Bob, Bob thanked');
  assert.equal(r.corrupted.text, 'When Alice met Bob, Alice thanked');
  assert.equal(doc.slice(r.clean.offset, r.clean.offset + r.clean.text.length), r.clean.text);
  assert.equal(doc.slice(r.corrupted.offset, r.corrupted.offset + r.corrupted.text.length), r.corrupted.text);
  assert.equal(r.clean.offsets, undefined);
});

test('leading and trailing whitespace of each prompt is trimmed; offset is the first kept character', () => {
  const sel = '   \n\t  clean prompt here  \n   corrupted prompt here\t\n\n  ';
  const r = prompts(sel, 100);
  assert.equal(r.clean.text, 'clean prompt here');
  assert.equal(r.clean.offset, 100 + sel.indexOf('clean'));
  assert.equal(r.corrupted.text, 'corrupted prompt here');
  assert.equal(r.corrupted.offset, 100 + sel.indexOf('corrupted'));
});

test('two paragraphs separated by a blank line; each may span lines', () => {
  const sel = 'The clean prompt\nspans two lines.\n\n   \nThe corrupted prompt\nspans two too.\n';
  const r = prompts(sel, 10);
  assert.equal(r.clean.text, 'The clean prompt\nspans two lines.');
  assert.equal(r.corrupted.text, 'The corrupted prompt\nspans two too.');
  assert.equal(r.corrupted.offset, 10 + sel.indexOf('The corrupted'));
});

test('CRLF line ends work, and multi-line prompts get LF with an offset map', () => {
  const sel = 'first line\r\nsecond line\r\n';
  const r = prompts(sel, 5);
  assert.equal(r.clean.text, 'first line');
  assert.equal(r.corrupted.text, 'second line');
  assert.equal(r.corrupted.offset, 5 + 12);

  const doc = 'clean a\r\nclean b\r\n\r\ncorrupted a\r\ncorrupted b';
  const p = prompts(doc, 0);
  assert.equal(p.clean.text, 'clean a\nclean b');
  assert.equal(p.corrupted.text, 'corrupted a\ncorrupted b');
  assert.ok(p.clean.offsets);
  assert.equal(p.clean.offsets.length, p.clean.text.length + 1);
  assert.equal(underlying(doc, p.clean), 'clean a\r\nclean b');
  // 'clean b' starts after the two-character line end.
  assert.deepEqual(toDocumentRange(p.clean, [8, 15]), [9, 16]);
  assert.equal(doc.slice(...toDocumentRange(p.corrupted, [12, 23])), 'corrupted b');
  // Blank lines made of CRLF alone, and lone CR, separate too.
  assert.equal(prompts('a\rb').corrupted.text, 'b');
});

test('a JSON object is read as a spec, with its text and offset for resolveSpec', () => {
  const sel = '  {"metric": "logit_diff", "sweeps": ["resid_pre"], "pairs": [{"clean": "a b", "corrupted": "a c", "answer": " b", "wrong": " c"}]}';
  const r = parseSelection(sel, 42) as SelectionSpec;
  assert.ok('spec' in r);
  assert.equal(r.spec.metric, 'logit_diff');
  assert.equal(r.text, sel);
  assert.equal(r.offset, 42);
});

test('a JSON selection with an error names the selection, the path, and the document offset', () => {
  const sel = '{\n  "metric": "logit_diff",\n  "sweeps": ["resid_pree"],\n  "pairs": []\n}';
  const e = userError(() => parseSelection(sel, 1000));
  assert.match(e.message, /^selection:3:14: unknown sweep 'resid_pree' at sweeps\[0\]; did you mean 'resid_pre'\?/);
  assert.equal(e.location!.offset, 1000 + sel.indexOf('"resid_pree"'));
  const bad = userError(() => parseSelection('{"metric": }', 0));
  assert.match(bad.message, /^selection:1:12: not valid JSON: unexpected '\}' where a value should be/);
});

test('anything else is one line explaining the accepted forms', () => {
  const cases: [string, RegExp][] = [
    [
      '',
      /^selection: the selection is empty; select two prompts — the clean one, then the corrupted one — as two lines, or as two paragraphs separated by a blank line; or select a JSON object/,
    ],
    ['  \n \r\n\t', /the selection is empty/],
    ['only one prompt', /only one line is selected/],
    ['a\nb\nc', /3 lines are selected with no blank line between them/],
    ['a\n\nb\n\nc', /3 paragraphs are selected/],
    ['a\r\n\r\nb\r\n\r\nc', /3 paragraphs are selected/],
  ];
  for (const [sel, re] of cases) {
    const e = userError(() => parseSelection(sel, 0));
    assert.match(e.message, re);
    assert.match(e.message, /JSON object in the \.patch\.json shape/);
  }
});
