import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import schema from '../../schemas/patch.schema.json';
import {
  INDUCTION_METRICS,
  INDUCTION_PATTERNS,
  METRIC_NAMES,
  SWEEP_NAMES,
  toDocumentRange,
  type InductionSpec,
  type PairSpec,
  type PatchSpec,
  type TargetSpec,
} from '../../src/protocol/spec';
import { gpt2Config } from '../helpers/configs';
import type { ModelConfig } from '../../src/engine/model/config';
import type { EncodedText, TextTokenizer } from '../../src/engine/model/tokenizer';
import { generateInduction, resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseJsonc } from '../../src/spec/jsonc';
import { parseSpecText } from '../../src/spec/parseSpec';
import { SpecError } from '../../src/spec/specError';
import { NEW_SPEC_TEMPLATE } from '../../src/spec/specTemplate';
import { isUserError } from '../../src/common/userError';

const EXAMPLES = join(__dirname, '..', '..', 'examples');
const GOLDEN = join(__dirname, '..', '..', '..', 'shared', 'golden', 'gpt2-2l4h', 'golden.patch.json');

/** Whitespace tokenizer: each token is a word with its leading whitespace, as GPT-2 splits words. */
class FakeTokenizer implements TextTokenizer {
  readonly vocabSize = 1000;
  readonly bosTokenId = 999;
  private readonly ids = new Map<string, number>();
  private readonly words: string[] = [];
  idOf(word: string): number {
    let id = this.ids.get(word);
    if (id === undefined) {
      id = this.words.length;
      this.ids.set(word, id);
      this.words.push(word);
    }
    return id;
  }
  encode(text: string): EncodedText {
    const ids: number[] = [];
    const ranges: [number, number][] = [];
    for (const m of text.matchAll(/\s*\S+/g)) {
      ids.push(this.idOf(m[0]));
      ranges.push([m.index, m.index + m[0].length]);
    }
    return { ids, ranges };
  }
  tokenString(id: number): string {
    return id === this.bosTokenId ? '<bos>' : (this.words[id] ?? '?');
  }
  decode(ids: readonly number[]): string {
    return ids.map((i) => this.tokenString(i)).join('');
  }
}

const CFG: ModelConfig = gpt2Config({ nLayers: 2, nHeads: 4, dModel: 32, dVocab: 1000, nCtx: 64 });

const BASE = { metric: 'logit_diff', sweeps: ['resid_pre'] };
const PAIR = { clean: 'When Alice met Bob , Bob thanked', corrupted: 'When Alice met Bob , Alice thanked', answer: ' Alice', wrong: ' Bob' };
const spec = (extra: object) => JSON.stringify({ ...BASE, ...extra }, null, 2);

/** Runs `f`, expects a one-line UserError, and returns its message. */
function userError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
    const msg = (e as Error).message;
    assert.equal(msg.split('\n').length, 1, `message is not one line: ${msg}`);
    assert.doesNotMatch(msg, /\bat .*\.ts:\d+|(?<!')NaN|undefined|\[object Object\]/);
    return msg;
  }
  assert.fail('expected an error');
}

// ---------------------------------------------------------------------------------------------
// Schema and types agree

test('the schema enums equal SWEEP_NAMES, METRIC_NAMES and the induction patterns', () => {
  assert.deepEqual(schema.properties.sweeps.items.enum, [...SWEEP_NAMES]);
  assert.deepEqual(schema.properties.metric.enum, [...METRIC_NAMES]);
  assert.deepEqual(schema.properties.induction.properties.corrupted.enum, [...INDUCTION_PATTERNS]);
  assert.deepEqual(schema.allOf[0]!.then.properties.metric!.enum, [...INDUCTION_METRICS]);
  assert.equal(schema.properties.sweeps.items.enumDescriptions.length, SWEEP_NAMES.length);
  assert.equal(schema.properties.metric.enumDescriptions.length, METRIC_NAMES.length);
});

test('the schema properties are exactly the fields of PatchSpec, PairSpec, InductionSpec and TargetSpec', () => {
  // Record<keyof T, true> fails to compile when a field is added to the type and not here.
  const specKeys: Record<keyof PatchSpec, true> = {
    $schema: true,
    name: true,
    model: true,
    prepend_bos: true,
    metric: true,
    sweeps: true,
    pairs: true,
    induction: true,
    description: true,
    plot: true,
    method: true,
    verify_top: true,
    dataset: true,
    direction: true,
    ablation: true,
    patch_sets: true,
    path_patching: true,
  };
  const pairKeys: Record<keyof PairSpec, true> = {
    clean: true,
    corrupted: true,
    clean_ids: true,
    corrupted_ids: true,
    answer: true,
    wrong: true,
    answer_id: true,
    wrong_id: true,
    targets: true,
    positions: true,
  };
  const inductionKeys: Record<keyof InductionSpec, true> = { seed: true, token_range: true, length: true, batch: true, corrupted: true };
  const targetKeys: Record<keyof TargetSpec, true> = { pos: true, token_id: true };
  const sorted = (o: object) => Object.keys(o).sort();
  assert.deepEqual(sorted(schema.properties), sorted(specKeys));
  assert.deepEqual(sorted(schema.properties.pairs.items.properties), sorted(pairKeys));
  assert.deepEqual(sorted(schema.properties.induction.properties), sorted(inductionKeys));
  assert.deepEqual(sorted(schema.properties.pairs.items.properties.targets.items.properties), sorted(targetKeys));
});

test('every schema property has a description and objects forbid unknown keys', () => {
  const walk = (node: unknown, path: string) => {
    if (node === null || typeof node !== 'object') return;
    const n = node as Record<string, unknown>;
    if (n.properties) {
      assert.equal(n.additionalProperties, false, `${path} allows unknown keys`);
      for (const [k, v] of Object.entries(n.properties as object)) {
        assert.equal(typeof (v as { description?: unknown }).description, 'string', `${path}.${k} has no description`);
        walk(v, `${path}.${k}`);
      }
    }
    if (n.items) walk(n.items, `${path}[]`);
  };
  walk(schema, 'spec');
});

function schemaValidator() {
  const ajv = new Ajv({ allErrors: true, strictTypes: false });
  ajv.addVocabulary(['defaultSnippets', 'markdownDescription', 'enumDescriptions', 'markdownEnumDescriptions', 'allowComments', 'allowTrailingCommas']);
  return ajv.compile(schema);
}

test('every example and the template validate against the schema and parse', () => {
  const validate = schemaValidator();
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.patch.json'));
  assert.ok(files.length >= 6);
  for (const f of files) {
    const text = readFileSync(join(EXAMPLES, f), 'utf8');
    assert.ok(validate(JSON.parse(text)), `${f}: ${JSON.stringify(validate.errors)}`);
    assert.deepEqual(parseSpecText(text, f), JSON.parse(text));
  }
  const template = parseSpecText(NEW_SPEC_TEMPLATE, 'new.patch.json');
  assert.ok(validate(template), JSON.stringify(validate.errors));
  assert.equal(template.model, 'gpt2');
  // Every field of the template has a comment on the line(s) above it.
  const lines = NEW_SPEC_TEMPLATE.split('\n');
  lines.forEach((line, i) => {
    if (/^\s*"\w+":/.test(line)) assert.match(lines[i - 1]!, /\/\/|\{/, `no comment above: ${line}`);
  });
  for (const key of ['name', 'description', 'model', 'prepend_bos', 'metric', 'sweeps', 'pairs', 'clean', 'corrupted', 'answer', 'wrong']) {
    assert.match(NEW_SPEC_TEMPLATE, new RegExp(`"${key}":`));
  }
});

test('the golden spec from ../shared validates', { skip: !existsSync(GOLDEN) && 'no ../shared' }, () => {
  const text = readFileSync(GOLDEN, 'utf8');
  const s = parseSpecText(text, GOLDEN);
  assert.equal(s.prepend_bos, false);
  const r = resolveSpec(s, new FakeTokenizer(), CFG, { file: GOLDEN, text });
  assert.equal(r.name, 'golden-2l4h');
  assert.equal(r.pairs.length, 2);
  assert.deepEqual(r.pairs[0]!.clean, s.pairs![0]!.clean_ids);
  assert.equal(r.pairs[1]!.answer, 252);
});

// ---------------------------------------------------------------------------------------------
// Parsing

test('valid specs round trip', () => {
  const specs: PatchSpec[] = [
    { metric: 'logit_diff', sweeps: ['resid_pre', 'block_every'], pairs: [PAIR] },
    {
      name: 'n',
      model: 'gpt2',
      prepend_bos: false,
      metric: 'answer_logprob',
      sweeps: ['attn_out'],
      pairs: [{ clean_ids: [1, 2], corrupted_ids: [1, 3], targets: [{ pos: 0, token_id: 2 }] }],
      description: 'd',
    },
    { metric: 'kl_divergence', sweeps: ['mlp_out'], induction: { seed: 7, token_range: [1, 50], length: 3, batch: 2, corrupted: 'BB' } },
    { metric: 'answer_prob', sweeps: ['resid_post'], pairs: [{ clean: 'a', corrupted: 'b', answer_id: 5 }] },
  ];
  for (const s of specs) assert.deepEqual(parseSpecText(JSON.stringify(s), 'x.patch.json'), s);
});

test('comments and trailing commas are accepted, and comment-like text inside strings is kept', () => {
  const text = `// leading comment
{
  /* block
     comment */ "metric": "logit_diff", // trailing
  "sweeps": ["resid_pre",],
  "pairs": [{"clean": "a // b /* c */", "corrupted": "http://x y z", "answer": " Alice", "wrong": " Bob",},],
}`;
  const s = parseSpecText(text, 'c.patch.json');
  assert.equal(s.pairs![0]!.clean, 'a // b /* c */');
  assert.equal(s.pairs![0]!.corrupted, 'http://x y z');
  assert.deepEqual(s.sweeps, ['resid_pre']);
});

test('line and column stay right after comments', () => {
  const text = '/* one\n two */ {\n  // c\n  "metric": "logit_dif",\n  "sweeps": ["resid_pre"]}';
  const msg = userError(() => parseSpecText(text, 'c.patch.json'));
  assert.match(msg, /^c\.patch\.json:4:13: unknown metric 'logit_dif' at metric; did you mean 'logit_diff'\? \(allowed: logit_diff, /);
});

test('a UTF-8 BOM is stripped', () => {
  assert.equal(parseSpecText(`\uFEFF${spec({ pairs: [PAIR] })}`, 'b.patch.json').metric, 'logit_diff');
});

test('JSON syntax errors give FILE:LINE:COL, the reason, and a fix', () => {
  const cases: [string, RegExp][] = [
    [
      '{\n  "metric": "logit_diff"\n  "sweeps": []\n}',
      /^s\.patch\.json:3:3: not valid JSON: expected ',' or '}' after the value of 'metric', found character '"'; a comma is probably missing/,
    ],
    ['{"a": \'x\'}', /^s\.patch\.json:1:7: not valid JSON: strings need double quotes/],
    ['{metric: 1}', /^s\.patch\.json:1:2: not valid JSON: property names need double quotes/],
    ['{"a": "x\ny"}', /^s\.patch\.json:1:9: not valid JSON: line break inside a string; .*\\n/],
    ['{"a": "x', /^s\.patch\.json:1:7: not valid JSON: the string is not closed; add the closing "/],
    ['{"a": [1, 2', /^s\.patch\.json:1:12: not valid JSON: unexpected end of file inside a list; add the closing \]/],
    ['{"a": 1e999}', /not valid JSON: number '1e999' is out of range/],
    ['{"a": 01}', /not valid JSON: invalid number '01'/],
    ['{"a": NaN}', /not valid JSON: unexpected word 'NaN'/],
    ['{"a": "\\q"}', /not valid JSON: invalid escape '\\\\q'/],
    ['{"a": 1} {}', /not valid JSON: unexpected character '\{' after the end of the JSON value/],
    ['/* open', /not valid JSON: the \/\* comment is not closed/],
    ['{"a": [1,,2]}', /^s\.patch\.json:1:10: not valid JSON: unexpected ',' where a value should be/],
    ['', /^s\.patch\.json: the file is empty/],
    ['{"metric": 1, "metric": 2}', /^s\.patch\.json:1:15: duplicate key 'metric' at the top level \(first on line 1\); remove one/],
  ];
  for (const [text, re] of cases)
    assert.match(
      userError(() => parseSpecText(text, 's.patch.json')),
      re,
    );
});

test('schema errors name the JSON path and what is allowed', () => {
  const cases: [string, RegExp][] = [
    [
      spec({ sweeps: ['resid_pree'], pairs: [PAIR] }),
      /:\d+:\d+: unknown sweep 'resid_pree' at sweeps\[0\]; did you mean 'resid_pre'\? \(allowed: resid_pre, resid_mid, .*attn_head_by_pos_every\)$/,
    ],
    [spec({ metric: 'logitdiff', pairs: [PAIR] }), /unknown metric 'logitdiff' at metric; did you mean 'logit_diff'\?/],
    [spec({ sweeps: ['zzzzzzzz'], pairs: [PAIR] }), /unknown sweep 'zzzzzzzz' at sweeps\[0\]; use one of: resid_pre, /],
    [JSON.stringify({ metric: 'logit_diff', sweep: ['resid_pre'], pairs: [PAIR] }), /unknown top-level key 'sweep'; did you mean 'sweeps'\? \(allowed: .*sweeps/],
    [spec({ pairs: [{ ...PAIR, anwser: ' x' }] }), /unknown key 'anwser' in pairs\[0\]; did you mean 'answer'\? \(allowed: clean, corrupted, /],
    [spec({ pairs: [PAIR, { ...PAIR, answer_id: 1.5, answer: undefined }] }), /pairs\[1\]\.answer_id must be a whole number, not the number 1\.5/],
    [spec({ pairs: [{ ...PAIR, answer_id: -1, answer: undefined }] }), /pairs\[0\]\.answer_id is -1, but it must be ≥ 0; token ids start at 0/],
    [spec({ pairs: [{ ...PAIR, clean: ['a'] }] }), /pairs\[0\]\.clean must be a string in double quotes, not a list; .*clean_ids/],
    [spec({ pairs: [{ ...PAIR, corrupted: undefined }] }), /pairs\[0\] has 'clean' but no 'corrupted'; text prompts come in pairs/],
    [spec({ pairs: [{ clean_ids: [1], answer: ' a', wrong: ' b' }] }), /pairs\[0\] has 'clean_ids' but no 'corrupted_ids'/],
    [spec({ pairs: [{ ...PAIR, clean_ids: [1], corrupted_ids: [2] }] }), /pairs\[0\] gives both text \(clean, corrupted\) and token ids/],
    [spec({ pairs: [{ answer: ' a', wrong: ' b' }] }), /pairs\[0\] has no prompts; give "clean" and "corrupted"/],
    [spec({ pairs: [{ ...PAIR, answer_id: 3 }] }), /pairs\[0\] gives both answer and answer_id; keep one/],
    [spec({ pairs: [{ ...PAIR, wrong: undefined }] }), /pairs\[0\] has no wrong answer; metric logit_diff needs "wrong"/],
    [spec({ metric: 'normalized_logit_diff', pairs: [{ ...PAIR, answer: undefined }] }), /pairs\[0\] has no answer; metric normalized_logit_diff needs "answer"/],
    [spec({ pairs: [{ ...PAIR, targets: [{ pos: 1, token_id: 2 }] }] }), /pairs\[0\] gives both an answer and targets/],
    [
      spec({
        pairs: [
          { clean: 'a', corrupted: 'b', answer: ' a', wrong: ' b', answer_id: undefined, targets: undefined },
          { clean: 'a', corrupted: 'b', targets: [{ pos: 0, token_id: 1 }], wrong: ' b' },
        ],
      }),
      /pairs\[1\] has no answer; metric logit_diff/,
    ],
    [spec({ metric: 'answer_logprob', pairs: [{ clean: 'a', corrupted: 'b' }] }), /pairs\[0\] has no answer; metric answer_logprob needs "answer" .* or "targets"/],
    [spec({ pairs: [{ ...PAIR, targets: [{ pos: 1 }] }], metric: 'answer_prob' }), /pairs\[0\]\.targets\[0\] is missing 'token_id'/],
    [spec({ pairs: [] }), /pairs is empty; add at least one pair/],
    [spec({ sweeps: [], pairs: [PAIR] }), /sweeps is empty; list at least one sweep/],
    [spec({ sweeps: ['resid_pre', 'attn_out', 'resid_pre'], pairs: [PAIR] }), /sweeps lists 'resid_pre' twice \(sweeps\[0\] and sweeps\[2\]\); remove one/],
    [JSON.stringify({ sweeps: ['resid_pre'], pairs: [PAIR] }), /the spec is missing 'metric'; add "metric": one of logit_diff, normalized_logit_diff/],
    [JSON.stringify({ metric: 'logit_diff', pairs: [PAIR] }), /the spec is missing 'sweeps'; add "sweeps": \["resid_pre"\]/],
    [spec({}), /the spec has no prompts; add "pairs"/],
    [spec({ metric: 'answer_logprob', pairs: [PAIR], induction: { seed: 0, corrupted: 'AB' } }), /the spec has both "pairs" and "induction"/],
    [spec({ induction: { seed: 0, corrupted: 'AB' } }), /metric 'logit_diff' needs answer and wrong tokens, which an induction spec does not have; use answer_logprob/],
    [spec({ metric: 'answer_logprob', induction: { seed: 0, corrupted: 'AC' } }), /unknown corruption pattern 'AC' at induction\.corrupted; did you mean 'AB'\?/],
    [
      spec({ metric: 'answer_logprob', induction: { seed: 0, corrupted: 'AB', token_range: [50, 10] } }),
      /induction\.token_range is \[50, 10\]; it must be \[lo, hi\] with lo < hi/,
    ],
    [spec({ metric: 'answer_logprob', induction: { seed: 0.5, corrupted: 'AB' } }), /induction\.seed must be a whole number/],
    [spec({ metric: 'answer_logprob', induction: { corrupted: 'AB' } }), /induction is missing 'seed'; add "seed": 0/],
    [spec({ prepend_bos: 'yes', pairs: [PAIR] }), /prepend_bos must be true or false, not the string 'yes'/],
    ['[1, 2]', /the spec must be a JSON object \{ … \}, not a list/],
  ];
  for (const [text, re] of cases) {
    const msg = userError(() => parseSpecText(text, 's.patch.json'));
    assert.match(msg, re, text);
    assert.match(msg, /^s\.patch\.json:\d+:\d+: /, msg);
  }
});

test('path_patching: receivers "resid_final" or heads\' inputs, sweeps optional; wrong names get one located message with the fix', () => {
  const ok = (path: object, extra: object = {}) => parseSpecText(JSON.stringify({ metric: 'logit_diff', pairs: [PAIR], path_patching: path, ...extra }), 's.patch.json');
  assert.deepEqual(ok({ receivers: ['L1H0.q', 'L1H2.k', 'L1H3.v'] }).path_patching, { receivers: ['L1H0.q', 'L1H2.k', 'L1H3.v'] });
  assert.deepEqual(ok({ receivers: 'resid_final', senders: ['L0H1'] }, { sweeps: ['resid_pre'] }).path_patching, { receivers: 'resid_final', senders: ['L0H1'] });
  const cases: [object, RegExp, string][] = [
    [
      { receivers: ['L1H0.q', 'L1H0'] },
      /path_patching\.receivers\[1\] is the string 'L1H0', not a receiver; a receiver is a head's query, key or value input, LxHy\.q, LxHy\.k or LxHy\.v/,
      '"L1H0"',
    ],
    [
      { receivers: ['resid_final'] },
      /path_patching\.receivers\[0\] is the string 'resid_final', not a receiver; .*make receivers "resid_final" itself, not a list$/,
      '"resid_final"',
    ],
    [{ receivers: ['L1H0.q', 'L1H0.q'] }, /path_patching\.receivers lists 'L1H0\.q' twice \(receivers\[0\] and receivers\[1\]\); remove one$/, '"L1H0.q"'],
    [{ receivers: 'resid_pre' }, /path_patching\.receivers is the string 'resid_pre'; write "resid_final" \(the final residual stream\) or a list of heads' inputs/, '"resid_pre"'],
    [{ receivers: [] }, /path_patching\.receivers is empty; write "resid_final"/, '[]'],
    [{ receivers: 'resid_final', senders: ['L0H1.q'] }, /path_patching\.senders\[0\] is 'L0H1\.q', not a sender; a sender is a head's output, LxHy, e.g\. "L5H1"$/, '"L0H1.q"'],
    [{ senders: ['L0H1'] }, /path_patching is missing 'receivers'/, '{\n    "senders": [\n      "L0H1"\n    ]\n  }'],
    [{ receiver: ['L1H0.q'] }, /unknown key 'receiver' in path_patching; did you mean 'receivers'\?/, '"receiver": [\n      "L1H0.q"\n    ]'],
  ];
  for (const [path, re, at] of cases) {
    const text = JSON.stringify({ metric: 'logit_diff', pairs: [PAIR], path_patching: path }, null, 2);
    try {
      parseSpecText(text, 's.patch.json');
      assert.fail(`no error for ${JSON.stringify(path)}`);
    } catch (e) {
      assert.ok(e instanceof SpecError, String(e));
      assert.match(e.message, re);
      assert.match(e.message, /^s\.patch\.json:\d+:\d+: /);
      assert.equal(text.slice(e.location!.offset, e.location!.end), at, e.message);
    }
  }
  assert.match(
    userError(() => ok({ receivers: ['L1H0.q'] }, { method: 'atp' })),
    /path_patching is exact patching in two stages, which method atp does not estimate/,
  );
});

test("plot: the seed notebook's settings parse; wrong values get one located message with the fix", () => {
  assert.deepEqual(parseSpecText(spec({ pairs: [PAIR], plot: { zmin: -1, zmax: 1 } }), 's.patch.json').plot, { zmin: -1, zmax: 1 });
  assert.deepEqual(parseSpecText(spec({ metric: 'answer_logprob', induction: { seed: 0, corrupted: 'AB' }, plot: { zmax: 'clean' } }), 's.patch.json').plot, { zmax: 'clean' });
  assert.deepEqual(parseSpecText(spec({ pairs: [PAIR], plot: { center: 'zero', zmin: 'corrupted', zmax: 'auto' } }), 's.patch.json').plot, {
    center: 'zero',
    zmin: 'corrupted',
    zmax: 'auto',
  });
  const cases: [object, RegExp, string][] = [
    [{ center: 'middle' }, /plot\.center is "middle"; use "corrupted", "clean", "zero" or a number$/, '"middle"'],
    [{ zmax: 'cleanest' }, /plot\.zmax is "cleanest"; use a number, "clean", "corrupted" or "auto"$/, '"cleanest"'],
    [{ zmin: [1] }, /plot\.zmin is a list; use a number/, '[\n      1\n    ]'],
    [{ zmin: 1, zmax: -1 }, /plot\.zmin \(1\) must be below plot\.zmax \(-1\); swap them$/, '1'],
    [{ zmin: 'clean', zmax: 'clean' }, /plot\.zmin and plot\.zmax are both "clean", which leaves no range/, '"clean"'],
    [{ center: 2, zmax: 1 }, /plot\.center \(2\) is above plot\.zmax \(1\); the white value must lie within the scale/, '2'],
    [{ zmid: 0 }, /unknown key 'zmid' in plot; did you mean 'zmin'\?/, '"zmid": 0'],
  ];
  for (const [plot, re, at] of cases) {
    const text = spec({ pairs: [PAIR], plot });
    try {
      parseSpecText(text, 's.patch.json');
      assert.fail(`no error for ${JSON.stringify(plot)}`);
    } catch (e) {
      assert.ok(e instanceof SpecError, String(e));
      assert.match(e.message, re);
      assert.match(e.message, /^s\.patch\.json:\d+:\d+: /);
      assert.equal(text.slice(e.location!.offset, e.location!.end), at, e.message);
    }
  }
  assert.match(
    userError(() => parseSpecText(spec({ pairs: [PAIR], plot: 'red' }), 's.patch.json')),
    /plot must be an object .*\{"zmin": -1, "zmax": 1\}/,
  );
});

test('the error location points at the offending node', () => {
  const text = spec({ pairs: [PAIR, { ...PAIR, answer_id: -3, answer: undefined }] });
  try {
    parseSpecText(text, 's.patch.json');
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof SpecError);
    const loc = e.location!;
    assert.equal(text.slice(loc.offset, loc.end), '-3');
    const [, line, col] = /:(\d+):(\d+):/.exec(e.message)!;
    const lines = text.split('\n');
    assert.equal(lines[Number(line) - 1]!.slice(Number(col) - 1, Number(col) + 1), '-3');
  }
  const unknown = spec({ pairs: [PAIR], extra: 1 });
  try {
    parseSpecText(unknown, 's.patch.json');
  } catch (e) {
    assert.equal(unknown.slice((e as SpecError).location!.offset).slice(0, 7), '"extra"');
  }
});

test('an unknown key at the top level is reported even when the other keys have errors after it', () => {
  const msg = userError(() => parseSpecText('{"metricc": "logit_diff", "sweeps": ["resid_pre"], "pairs": []}', 's.patch.json'));
  assert.match(msg, /unknown top-level key 'metricc'; did you mean 'metric'\?/);
});

// The timeout is a hang guard (quadratic work on these inputs would not end), not a measure of speed.
test('huge or deeply nested inputs fail with a clear message', { timeout: 300_000 }, () => {
  assert.match(
    userError(() => parseSpecText(' '.repeat(10 * 1024 * 1024 + 1), 'big.patch.json')),
    /^big\.patch\.json: the spec is 10\.0 MB, over the 10 MB limit/,
  );
  assert.match(
    userError(() => parseSpecText('['.repeat(100000), 'deep.patch.json')),
    /^deep\.patch\.json:1:129: not valid JSON: nested more than 128 levels deep/,
  );
  assert.match(
    userError(() => parseSpecText(`{"a":${'{"a":'.repeat(50000)}1${'}'.repeat(50001)}`, 'deep.patch.json')),
    /nested more than 128 levels/,
  );
  // 1.5M ids, all out of range for the schema: one message, quickly.
  const ids = Array.from({ length: 1_500_000 }, () => -1);
  const text = JSON.stringify({ ...BASE, pairs: [{ clean_ids: ids, corrupted_ids: ids, answer_id: 1, wrong_id: 2 }] });
  assert.match(
    userError(() => parseSpecText(text, 'ids.patch.json')),
    /pairs\[0\]\.clean_ids\[0\] is -1, but it must be ≥ 0/,
  );
});

test('parseJsonc keeps __proto__ as a plain key', () => {
  const v = parseJsonc('{"__proto__": {"x": 1}}', 'p.json') as Record<string, unknown>;
  assert.deepEqual(Object.keys(v), ['__proto__']);
  assert.equal(({} as Record<string, unknown>).x, undefined);
  assert.match(
    userError(() => parseSpecText('{"__proto__": {}}', 'p.patch.json')),
    /unknown top-level key '__proto__'/,
  );
});

// ---------------------------------------------------------------------------------------------
// Resolution (fake tokenizer)

test('text prompts get BOS and document ranges; the default name is the file name', () => {
  const text = spec({ pairs: [PAIR] });
  const tok = new FakeTokenizer();
  const r = resolveSpec(parseSpecText(text, '/w/ioi.patch.json'), tok, CFG, { file: '/w/ioi.patch.json', text });
  assert.equal(r.name, 'ioi');
  assert.equal(r.prependBos, true);
  assert.equal(r.model, undefined);
  const p = r.pairs[0]!;
  assert.equal(p.clean[0], 999);
  assert.equal(p.clean.length, 8);
  assert.equal(p.corrupted.length, 8);
  assert.deepEqual(p.clean.slice(1), tok.encode(PAIR.clean).ids);
  assert.equal(p.answer, tok.idOf(' Alice'));
  assert.equal(p.wrong, tok.idOf(' Bob'));
  assert.equal(p.targets, undefined);
  assert.equal(p.cleanRanges![0], null);
  // Each range is the token's text in the spec file.
  p.cleanRanges!.slice(1).forEach((rg, i) => assert.equal(text.slice(rg![0], rg![1]), tok.tokenString(p.clean[i + 1]!)));
  assert.equal(text.slice(p.corruptedSource!.offset, p.corruptedSource!.offset + PAIR.corrupted.length), PAIR.corrupted);
  assert.equal(p.cleanSource!.offsets, undefined);
});

test('document ranges map through JSON escapes', () => {
  const clean = 'say "hi"\tnow\n\u00e9t\u00e9 ok';
  const corrupted = 'say "yo"\tnow\n\u00e9t\u00e9 no';
  // \u escapes written out, to exercise 6-character escapes.
  const text = spec({ pairs: [{ clean, corrupted, answer: ' a', wrong: ' b' }] }).replace(/é/g, '\\u00e9');
  const tok = new FakeTokenizer();
  const r = resolveSpec(parseSpecText(text, 'e.patch.json'), tok, CFG, { file: 'e.patch.json', text, textOffset: 100 });
  const p = r.pairs[0]!;
  const src = p.cleanSource!;
  assert.ok(src.offsets);
  assert.equal(src.offsets.length, clean.length + 1);
  const docTokens = p.cleanRanges!.slice(1).map((rg) => text.slice(rg![0] - 100, rg![1] - 100));
  assert.deepEqual(docTokens, ['say', ' \\"hi\\"', '\\tnow', '\\n\\u00e9t\\u00e9', ' ok']);
  assert.deepEqual(toDocumentRange(src, [0, 3]), [src.offset, src.offset + 3]);
});

test('no source text: ranges are relative to the prompt and there is no source', () => {
  const tok = new FakeTokenizer();
  const r = resolveSpec({ ...BASE, pairs: [PAIR] } as PatchSpec, tok, CFG, { file: 'x' });
  assert.deepEqual(r.pairs[0]!.cleanRanges![1], [0, 4]);
  assert.equal(r.pairs[0]!.cleanSource, undefined);
  assert.equal(r.name, 'x');
});

test('explicit sources (a two-line selection) are used when their text matches', () => {
  const tok = new FakeTokenizer();
  const sources = [{ clean: { text: PAIR.clean, offset: 50 }, corrupted: { text: 'other', offset: 90 } }];
  const r = resolveSpec({ ...BASE, pairs: [PAIR] } as PatchSpec, tok, CFG, { file: 'selection', sources });
  assert.deepEqual(r.pairs[0]!.cleanRanges![1], [50, 54]);
  assert.equal(r.pairs[0]!.cleanSource!.offset, 50);
  assert.equal(r.pairs[0]!.corruptedSource, undefined);
});

test('token ids are taken as is: no BOS, no ranges', () => {
  const s: PatchSpec = { metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean_ids: [1, 2, 3], corrupted_ids: [1, 2, 4], answer_id: 5, wrong_id: 6 }] };
  const r = resolveSpec(s, new FakeTokenizer(), CFG, { file: 'ids.patch.json' });
  assert.deepEqual(r.pairs[0], { clean: [1, 2, 3], corrupted: [1, 2, 4], answer: 5, wrong: 6 });
  assert.equal(r.prependBos, true);
});

test('prepend_bos false: text prompts start with their first token', () => {
  const tok = new FakeTokenizer();
  const r = resolveSpec({ ...BASE, prepend_bos: false, pairs: [PAIR] } as PatchSpec, tok, CFG, { file: 'x' });
  assert.equal(r.pairs[0]!.clean.length, 7);
  assert.notEqual(r.pairs[0]!.clean[0], 999);
  assert.deepEqual(r.pairs[0]!.cleanRanges![0], [0, 4]);
});

test('pairs of different lengths across pairs are allowed', () => {
  const r = resolveSpec({ ...BASE, pairs: [PAIR, { clean: 'a b', corrupted: 'a c', answer: ' b', wrong: ' c' }] } as PatchSpec, new FakeTokenizer(), CFG, { file: 'x' });
  assert.deepEqual(
    r.pairs.map((p) => p.clean.length),
    [8, 3],
  );
});

test('resolution errors: one line, naming the pair and the field', () => {
  const tok = new FakeTokenizer();
  const run = (s: object, file = 'r.patch.json') => {
    const text = JSON.stringify({ ...BASE, ...s }, null, 2);
    return userError(() => resolveSpec(parseSpecText(text, file), tok, CFG, { file, text }));
  };
  assert.match(
    run({ pairs: [PAIR, { clean: 'When Alice met Bob , Bob thanked', corrupted: 'When someone thanked', answer: ' Alice', wrong: ' Bob' }] }),
    /^r\.patch\.json:\d+:\d+: pairs\[1\]: clean has 8 tokens, corrupted has 4; position-wise patching needs the clean and corrupted prompts to have the same number of tokens — .*swap names rather than remove them.*clean \[.*' Alice'.*\] vs corrupted \[.*' someone'.*\]/,
  );
  assert.match(
    run({ pairs: [{ ...PAIR, answer: ' Alice Smith' }] }),
    /pairs\[0\]\.answer ' Alice Smith' is 2 tokens \[' Alice' ' Smith'\], but an answer must be exactly one token; use a single word/,
  );
  assert.match(
    run({ pairs: [{ clean_ids: [1, 2], corrupted_ids: [1, 2000], answer_id: 1, wrong_id: 2 }] }),
    /pairs\[0\]\.corrupted_ids\[1\] \(position 1\) is token id 2000, outside the model's vocabulary \[0, 1000\)/,
  );
  assert.match(
    run({ pairs: [{ clean_ids: [1, 2], corrupted_ids: [1, 3], answer_id: 1000, wrong_id: 2 }] }),
    /pairs\[0\]\.answer_id is token id 1000, outside the model's vocabulary \[0, 1000\)/,
  );
  assert.match(run({ pairs: [{ clean_ids: [1, 2], corrupted_ids: [1, 2, 3], answer_id: 1, wrong_id: 2 }] }), /pairs\[0\]: clean has 2 tokens, corrupted has 3/);
  const long = Array.from({ length: 70 }, (_, i) => `w${i}`).join(' ');
  assert.match(
    run({ pairs: [{ clean: long, corrupted: long, answer: ' a', wrong: ' b' }] }),
    /pairs\[0\]\.clean is 71 tokens \(with BOS\), but the model's context is 64 \(n_ctx\); shorten the prompt/,
  );
  assert.match(
    run({
      metric: 'answer_logprob',
      pairs: [
        {
          clean: 'a b',
          corrupted: 'a c',
          targets: [
            { pos: 2, token_id: 1 },
            { pos: 3, token_id: 1 },
          ],
        },
      ],
    }),
    /pairs\[0\]\.targets\[1\]\.pos is 3, but the sequence has 3 tokens \(BOS included\), so positions go 0…2/,
  );
  assert.match(
    run({ metric: 'answer_logprob', pairs: [{ clean: 'a b', corrupted: 'a c', targets: [{ pos: 0, token_id: 1234 }] }] }),
    /pairs\[0\]\.targets\[0\]\.token_id is token id 1234/,
  );
  assert.match(
    run({ metric: 'answer_logprob', induction: { seed: 1, corrupted: 'AB', token_range: [0, 5000] } }),
    /induction\.token_range \[0, 5000\] goes past the model's vocabulary of 1000 tokens; use hi ≤ 1000/,
  );
  assert.match(
    run({ metric: 'answer_logprob', induction: { seed: 1, corrupted: 'AB', token_range: [0, 100], length: 40 } }),
    /induction\.length 40 gives 81 tokens, but the model's context is 64 \(n_ctx\); use length ≤ 31/,
  );
});

test('a spec built in code is validated too', () => {
  const msg = userError(() => resolveSpec({ metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: 'a', corrupted: 'b' }] }, new FakeTokenizer(), CFG, { file: 'sel' }));
  assert.match(msg, /^sel: pairs\[0\] has no answer/);
});

test('the answer hint offers the leading-space spelling when that is one token', () => {
  const tok = new FakeTokenizer();
  // The fake tokenizer splits 'Bob Smith' in two but ' Bob' alone is one token either way; make a
  // tokenizer where 'Bob' (no space) is two tokens and ' Bob' one.
  const split = Object.assign(Object.create(tok) as FakeTokenizer, {
    encode: (text: string): EncodedText =>
      text === 'Bob'
        ? {
            ids: [1, 2],
            ranges: [
              [0, 1],
              [1, 3],
            ],
          }
        : tok.encode(text),
  });
  const text = spec({ pairs: [{ ...PAIR, wrong: 'Bob' }] });
  const msg = userError(() => resolveSpec(parseSpecText(text, 'h.patch.json'), split, CFG, { file: 'h.patch.json', text }));
  assert.match(msg, /pairs\[0\]\.wrong 'Bob' is 2 tokens .* add a leading space: ' Bob' is one token/);
});

// ---------------------------------------------------------------------------------------------
// Induction

const IND = (corrupted: InductionSpec['corrupted'], extra: Partial<InductionSpec> = {}): PatchSpec => ({
  metric: 'answer_logprob',
  sweeps: ['resid_pre'],
  induction: { seed: 0, corrupted, ...extra },
});

test('induction generation is deterministic and matches the pattern definitions', () => {
  const tok = new FakeTokenizer();
  const cfg = { ...CFG, dVocab: 50000, nCtx: 1024 };
  const res = (p: InductionSpec['corrupted'], extra?: Partial<InductionSpec>) => resolveSpec(IND(p, extra), tok, cfg, { file: `induction-${p}.patch.json` });
  const ab = res('AB');
  assert.equal(ab.name, 'induction-AB');
  assert.deepEqual(ab, res('AB'), 'same seed, same tokens');
  assert.equal(ab.pairs.length, 4);
  const L = 20;
  for (const pattern of INDUCTION_PATTERNS) {
    const r = res(pattern);
    r.pairs.forEach((p, row) => {
      const clean = ab.pairs[row]!.clean;
      assert.deepEqual(p.clean, clean, 'the clean tokens do not depend on the pattern');
      assert.equal(clean.length, 2 * L + 1);
      assert.equal(clean[0], 999);
      const A = clean.slice(1, L + 1);
      assert.deepEqual(clean.slice(L + 1), A, 'clean = BOS A A');
      assert.ok(A.every((t) => Number.isInteger(t) && t >= 100 && t < 10000));
      const first = p.corrupted.slice(1, L + 1);
      const second = p.corrupted.slice(L + 1);
      assert.equal(p.corrupted[0], 999);
      assert.equal(p.corrupted.length, clean.length);
      const B = res('BB').pairs[row]!.corrupted.slice(1, L + 1);
      const C = res('BC').pairs[row]!.corrupted.slice(L + 1);
      assert.notDeepEqual(B, A);
      assert.notDeepEqual(C, B);
      if (pattern === 'AB') assert.deepEqual([first, second], [A, B]);
      if (pattern === 'BA') assert.deepEqual([first, second], [B, A]);
      if (pattern === 'BB') assert.deepEqual([first, second], [B, B]);
      if (pattern === 'BC') assert.deepEqual([first, second], [B, C]);
      // Targets: positions L+1 … 2L-1, each predicting the next clean token (A[1..L-1]).
      assert.deepEqual(
        p.targets!.map((t) => t.pos),
        Array.from({ length: L - 1 }, (_, k) => L + 1 + k),
      );
      assert.deepEqual(
        p.targets!.map((t) => t.token),
        A.slice(1),
      );
      p.targets!.forEach((t) => assert.equal(t.token, clean[t.pos + 1]));
    });
  }
  assert.notDeepEqual(res('AB', { seed: 1 }).pairs[0]!.clean, ab.pairs[0]!.clean);
  // Rows differ from each other.
  assert.notDeepEqual(ab.pairs[0]!.clean, ab.pairs[1]!.clean);
});

test('induction tokens for seed 0 are pinned (the same on every machine)', () => {
  const pairs = generateInduction({ seed: 0, corrupted: 'AB', token_range: [100, 10000], length: 5, batch: 2 }, 7);
  const again = generateInduction({ seed: 0, corrupted: 'AB', token_range: [100, 10000], length: 5, batch: 2 }, 7);
  assert.deepEqual(pairs, again);
  // Pinned from this implementation: a change here changes every induction example's tokens.
  assert.deepEqual(pairs[0]!.clean, [7, ...PINNED_A0, ...PINNED_A0]);
});
const PINNED_A0 = [2737, 103, 2310, 1547, 4726];

test('induction respects token_range, length, batch and prepend_bos', () => {
  const r = resolveSpec(IND('BC', { token_range: [5, 8], length: 3, batch: 6 }), new FakeTokenizer(), CFG, { file: 'i' });
  assert.equal(r.pairs.length, 6);
  for (const p of r.pairs) {
    assert.equal(p.clean.length, 7);
    assert.ok([...p.clean.slice(1), ...p.corrupted.slice(1)].every((t) => t >= 5 && t < 8));
    assert.deepEqual(
      p.targets!.map((t) => t.pos),
      [4, 5],
    );
  }
  const noBos = resolveSpec({ ...IND('AB', { length: 3, token_range: [5, 50] }), prepend_bos: false }, new FakeTokenizer(), CFG, { file: 'i' });
  const p = noBos.pairs[0]!;
  assert.equal(p.clean.length, 6);
  assert.deepEqual(p.clean.slice(0, 3), p.clean.slice(3));
  assert.deepEqual(
    p.targets!.map((t) => t.pos),
    [3, 4],
  );
  p.targets!.forEach((t) => assert.equal(t.token, p.clean[t.pos + 1]));
});
