// Datasets (JSONL and CSV next to the spec) and labelled positions (a `positions` map, or marks in the
// text), resolved against GPT-2's real tokenizer: which tokens a label lands on, where those tokens sit
// in the file, and one clear message for each mistake, at the dataset's line.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeGpt2TokenizerFiles } from '../../src/engine/model/gpt2Tokenizer';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import type { TextTokenizer } from '../../src/engine/model/tokenizer';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseCsv } from '../../src/engine/patching/dataset';
import { parseMarks } from '../../src/spec/positionMarks';
import { parseSpecText } from '../../src/spec/parseSpec';
import { isUserError } from '../../src/common/userError';
import { makeTmpDir } from '../helpers/checkpoint';
import { GPT2_SMALL_CONFIG } from '../helpers/configs';

let tok: TextTokenizer;
let dir: string;
before(async () => {
  const t = makeTmpDir('datasets-tok');
  writeGpt2TokenizerFiles(t);
  tok = await loadTokenizer(t, GPT2_SMALL_CONFIG);
  dir = makeTmpDir('datasets');
});

/** Writes a spec (and its files) and resolves it. */
function resolveIn(spec: object, files: Record<string, string> = {}, name = 't.patch.json') {
  const sub = join(dir, String(Math.random()).slice(2));
  mkdirSync(sub);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(sub, f), text);
  const text = JSON.stringify(spec, null, 2);
  const file = join(sub, name);
  writeFileSync(file, text);
  return { resolved: resolveSpec(parseSpecText(text, file), tok, GPT2_SMALL_CONFIG, { file, text }), text, file, sub };
}

function userError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(isUserError(e), `not a UserError: ${String(e)}`);
    assert.ok(!(e as Error).message.includes('\n'), 'one line');
    return (e as Error).message;
  }
  assert.fail('no error');
}

const BASE = { metric: 'logit_diff', sweeps: ['resid_pre'] };
const strings = (ids: number[]) => ids.map((id) => tok.tokenString(id));

test('marks: only matched [NAME]…[/NAME] pairs are marks; their text stays, and indices map back to the written text', () => {
  const m = parseMarks('When [IO]Mary[/IO] and [S1]John[/S1] went, [S2]John[/S2] gave [x] a [1]drink[/1]')!;
  assert.equal(m.text, 'When Mary and John went, John gave [x] a [1]drink[/1]');
  assert.deepEqual([...m.marks.keys()], ['IO', 'S1', 'S2']);
  assert.deepEqual(m.marks.get('IO'), [[5, 9]]);
  assert.equal(m.text.slice(...m.marks.get('S2')![0]!), 'John');
  // Character i of the plain text is character original[i] of the written one.
  const written = 'When [IO]Mary[/IO] and';
  const w = parseMarks(written)!;
  for (let i = 0; i < w.text.length; i++) assert.equal(written[w.original[i]!], w.text[i]);
  assert.equal(parseMarks('no marks [here]'), undefined);
  // One label may mark several stretches.
  assert.deepEqual(parseMarks('[A]x[/A] y [A]z[/A]')!.marks.get('A'), [
    [0, 1],
    [4, 5],
  ]);
});

test('a marked prompt labels the tokens the marks cover; the model sees the text without marks; ranges point into the file', () => {
  const clean = 'When [IO]Mary[/IO] and [S1]John[/S1] went to the store,[S2] John[/S2] gave a drink[END] to[/END]';
  const corrupted = 'When Mary and John went to the store, Anne gave a drink to';
  const { resolved, text } = resolveIn({ ...BASE, pairs: [{ clean, corrupted, answer: ' Mary', wrong: ' John' }] });
  const pair = resolved.pairs[0]!;
  assert.deepEqual(resolved.labels, ['IO', 'S1', 'S2', 'END']);
  assert.equal(tok.decode(pair.clean.slice(1)), 'When Mary and John went to the store, John gave a drink to');
  const s = strings(pair.clean);
  assert.equal(s[pair.labels!.IO![0]!], ' Mary');
  assert.equal(s[pair.labels!.S1![0]!], ' John');
  assert.equal(s[pair.labels!.S2![0]!], ' John');
  assert.deepEqual(pair.labels!.END, [pair.clean.length - 1]);
  // The token " Mary" spans the space before the mark and the marked word, in the file's text.
  const [a, b] = pair.cleanRanges![pair.labels!.IO![0]!]!;
  assert.equal(text.slice(a, b), ' [IO]Mary');
});

test('a positions map labels positions (BOS counted), a label may name several; marks and positions combine', () => {
  const { resolved } = resolveIn({
    ...BASE,
    pairs: [
      { clean: 'When Mary and [S]John[/S] met', corrupted: 'When Anne and John met', answer: ' Mary', wrong: ' John', positions: { IO: 2, BOTH: [4, 2] } },
      { clean: 'Then Mary saw [S]Bob[/S] at last', corrupted: 'Then Anne saw Bob at last', answer: ' Mary', wrong: ' Bob', positions: { IO: 2, BOTH: [2, 4] } },
    ],
  });
  assert.deepEqual(resolved.labels, ['S', 'IO', 'BOTH']);
  assert.deepEqual(resolved.pairs[0]!.labels, { S: [4], IO: [2], BOTH: [2, 4] });
  assert.deepEqual(resolved.pairs[1]!.labels!.S, [4]);
});

test('labelled positions: one clear message per mistake', () => {
  const pair = { clean: 'When Mary and John met', corrupted: 'When Anne and John met', answer: ' Mary', wrong: ' John' };
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, positions: { IO: 9 } }] })),
    /pairs\[0\]\.positions\.IO is 9, but the pair has 6 tokens \(BOS included\), so positions go 0…5/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, positions: { IO: 2 } }, pair] })),
    /pairs\[1\] labels no labels, but pairs\[0\] labels IO; every pair must name the same labels/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, clean: 'When [IO][/IO]Mary and John met' }] })),
    /marks \[IO\] around no text/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, clean: 'When [IO]Mary[/IO] and John met', corrupted: 'When Anne and [IO]John[/IO] met' }] })),
    /pairs\[0\]\.corrupted marks \[IO\] at token 4, but the clean prompt marks it at 2/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, clean: 'When [IO]Mary[/IO] and John met', positions: { IO: 2 } }] })),
    /labels IO both with a mark/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, positions: { 'two words': 2 } }] })),
    /has the label 'two words'; a label is a name of letters/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [{ ...pair, positions: { IO: -1 } }] })),
    /pairs\[0\]\.positions\.IO must be a position/,
  );
});

const IOI = [
  {
    clean: 'When [IO]Mary[/IO] and [S1]John[/S1] went to the store,[S2] John[/S2] gave a drink[END] to[/END]',
    corrupted: 'When Mary and John went to the store, Anne gave a drink to',
    answer: ' Mary',
    wrong: ' John',
  },
  {
    clean: 'Then,[IO] Anne[/IO] and[S1] Bob[/S1] had a long argument, and afterwards[S2] Bob[/S2] said[END] to[/END]',
    corrupted: 'Then, Anne and Bob had a long argument, and afterwards Mark said to',
    answer: ' Anne',
    wrong: ' Bob',
  },
];

test('a JSONL dataset beside the spec gives its pairs, each its own length, with their labels', () => {
  const jsonl = `${JSON.stringify(IOI[0])}\n\n${JSON.stringify(IOI[1])}\n`;
  const { resolved } = resolveIn({ ...BASE, dataset: 'ioi.jsonl' }, { 'ioi.jsonl': jsonl });
  assert.equal(resolved.pairs.length, 2);
  assert.notEqual(resolved.pairs[0]!.clean.length, resolved.pairs[1]!.clean.length);
  assert.deepEqual(resolved.labels, ['IO', 'S1', 'S2', 'END']);
  assert.equal(strings(resolved.pairs[1]!.clean)[resolved.pairs[1]!.labels!.IO![0]!], ' Anne');
  // Ranges of dataset prompts are in the prompt's own text, marks included.
  const [a, b] = resolved.pairs[1]!.cleanRanges![resolved.pairs[1]!.labels!.IO![0]!]!;
  assert.equal(IOI[1]!.clean.slice(a, b), ' Anne');
});

test('a CSV dataset: header columns, quoted fields with commas, quotes and line breaks, pos_LABEL columns', () => {
  const csv = [
    'clean,corrupted,answer,wrong,pos_IO',
    `"When Mary and John went, John said ""hi"" to",When Mary and John went; Anne said "hi" to, Mary, John,2`,
    '"Then Anne\nand Bob met, Bob spoke to","Then Anne\nand Bob met, Mark spoke to", Anne, Bob,2',
    '',
  ].join('\r\n');
  const { resolved } = resolveIn({ ...BASE, dataset: 'ioi.csv' }, { 'ioi.csv': csv });
  assert.equal(resolved.pairs.length, 2);
  assert.equal(tok.decode(resolved.pairs[0]!.clean.slice(1)), 'When Mary and John went, John said "hi" to');
  assert.equal(tok.decode(resolved.pairs[1]!.clean.slice(1)), 'Then Anne\nand Bob met, Bob spoke to');
  assert.deepEqual(resolved.labels, ['IO']);
  assert.deepEqual(
    parseCsv('a,b\n1,"x\ny"\n2,z').map((r) => r.line),
    [1, 2, 4],
  );
});

test('dataset mistakes are reported at the dataset line that has them', () => {
  const good = JSON.stringify({ clean: 'When Mary and John met', corrupted: 'When Anne and John met', answer: ' Mary', wrong: ' John' });
  const at = (files: Record<string, string>, dataset: string) => userError(() => resolveIn({ ...BASE, dataset }, files));
  assert.match(
    at({ 'd.jsonl': `${good}\n{"clean": "x", "corrupted": "y", "answer": " Mary Ann", "wrong": " John"}\n` }, 'd.jsonl'),
    /d\.jsonl:2: pairs\[1\]\.answer ' Mary Ann' is 2 tokens/,
  );
  assert.match(at({ 'd.jsonl': `${good}\n\n{"clean": "x", "corupted": "y"}\n` }, 'd.jsonl'), /d\.jsonl:3: unknown key 'corupted' in pairs\[1\]; did you mean 'corrupted'/);
  assert.match(at({ 'd.jsonl': `${good}\n{oops\n` }, 'd.jsonl'), /d\.jsonl:2: not valid JSON/);
  assert.match(at({ 'd.jsonl': `${good}\n[1, 2]\n` }, 'd.jsonl'), /d\.jsonl:2: a line must be one pair object/);
  assert.match(at({ 'd.jsonl': '\n' }, 'd.jsonl'), /has no pairs/);
  // A file that cannot be read is fixed in the spec: the message points at its "dataset".
  assert.match(at({}, 'missing.jsonl'), /t\.patch\.json:\d+:\d+: cannot read the dataset .*missing\.jsonl \(.*\); check "dataset"/);
  assert.match(at({ 'd.txt': good }, 'd.txt'), /neither \.jsonl nor \.csv/);
  assert.match(at({ 'd.csv': 'clean,corrupted,answer,wrong,extra\n' }, 'd.csv'), /d\.csv:1: unknown column 'extra'/);
  assert.match(at({ 'd.csv': 'clean,corrupted,answer,wrong\na,b,c\n' }, 'd.csv'), /d\.csv:2: 3 fields where the header has 4/);
  assert.match(at({ 'd.csv': 'clean,corrupted,answer,wrong,pos_IO\na,b, x, y,two\n' }, 'd.csv'), /d\.csv:2: column pos_IO is 'two'/);
  assert.match(at({ 'd.csv': 'clean,corrupted\n"a,b\n' }, 'd.csv'), /line 2: a quoted field is not closed/);
  assert.match(
    userError(() => resolveIn({ ...BASE, dataset: 'd.jsonl', pairs: [JSON.parse(good)] }, { 'd.jsonl': good })),
    /the spec has both "pairs" and "dataset"/,
  );
});

test('direction and ablation: an ablation needs only clean prompts, is noising, and has no normalized metric', () => {
  const { resolved } = resolveIn({ ...BASE, ablation: 'mean', pairs: [{ clean: 'When [IO]Mary[/IO] and John met', answer: ' Mary', wrong: ' John' }] });
  assert.equal(resolved.ablation, 'mean');
  assert.deepEqual(resolved.pairs[0]!.corrupted, resolved.pairs[0]!.clean);
  assert.deepEqual(resolved.labels, ['IO']);
  const noising = resolveIn({ ...BASE, direction: 'noising', pairs: [{ clean: 'When Mary and John met', corrupted: 'When Anne and John met', answer: ' Mary', wrong: ' John' }] });
  assert.equal(noising.resolved.direction, 'noising');
  const clean = { clean: 'When Mary met', answer: ' Mary', wrong: ' John' };
  assert.match(
    userError(() => resolveIn({ ...BASE, pairs: [clean] })),
    /pairs\[0\] has 'clean' but no 'corrupted'; text prompts come in pairs — add 'corrupted' \(the corrupted prompt\), or set "ablation"/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, ablation: 'zero', direction: 'denoising', pairs: [clean] })),
    /"ablation" writes zeros into the clean run, which is noising; remove "direction"/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, metric: 'normalized_logit_diff', ablation: 'mean', pairs: [clean] })),
    /an ablation has no corrupted run; use logit_diff/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, ablation: 'average', pairs: [clean] })),
    /unknown value 'average' at ablation; use one of: zero, mean, mean_over_positions/,
  );
  assert.match(
    userError(() => resolveIn({ ...BASE, direction: 'backwards', pairs: [clean] })),
    /unknown value 'backwards' at direction; use one of: denoising, noising/,
  );
});
