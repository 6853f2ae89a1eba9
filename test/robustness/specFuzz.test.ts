/**
 * Fuzzing the `.patch.json` parser, the resolver (with the real GPT-2 tokenizer) and the selection
 * parser with thousands of hostile or broken inputs. The property, for every case: the result is a
 * spec, or a UserError whose message is one line, points at a line:column (or is about the whole
 * file) and leaks no stack; an accepted spec resolves, or fails the same way; a resolved spec is
 * something the engine can run (equal lengths, ids in the vocabulary, within the context).
 *
 * Every loop is bounded by a count and seeded, so a failing case reproduces by its number.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { ModelConfig } from '../../src/engine/model/config';
import { writeGpt2TokenizerFiles } from '../../src/engine/model/gpt2Tokenizer';
import { loadTokenizer } from '../../src/engine/model/textTokenizer';
import type { TextTokenizer } from '../../src/engine/model/tokenizer';
import { parseSelection } from '../../src/spec/selection';
import { resolveSpec } from '../../src/engine/patching/resolveSpec';
import { parseSpecText } from '../../src/spec/parseSpec';
import { SpecError } from '../../src/spec/specError';
import { NEW_SPEC_TEMPLATE } from '../../src/spec/specTemplate';
import { LOGIT_DIFF_METRICS, MAX_SPEC_CHARS, type PatchSpec, type ResolvedSpec, TARGET_METRICS } from '../../src/protocol/spec';
import { makeTmpDir } from '../helpers/checkpoint';
import { attempt, Failures, preview, Rng, userErrorProblem } from './fuzz';
import { GPT2_SMALL_CONFIG } from '../helpers/configs';

const FILE = 'fuzz.patch.json';
const EXAMPLES = join(__dirname, '..', '..', 'examples');

const GPT2 = GPT2_SMALL_CONFIG;
// A short context, so that the fuzz reaches the "longer than the model's context" path often.
const SHORT_CTX: ModelConfig = { ...GPT2, nCtx: 24 };

/** Valid specs to mutate: the examples, the new-file template, and hand-written ones for every form. */
const HAND_WRITTEN: string[] = [
  JSON.stringify({
    name: 'ids',
    model: 'gpt2',
    prepend_bos: false,
    metric: 'normalized_logit_diff',
    sweeps: ['resid_pre', 'attn_head_pattern_dest_src_pos'],
    pairs: [
      { clean_ids: [50256, 464, 3290, 373], corrupted_ids: [50256, 464, 3797, 373], answer_id: 257, wrong_id: 262 },
      { clean_ids: [1, 2, 3], corrupted_ids: [4, 5, 6], answer_id: 7, wrong_id: 8 },
    ],
  }),
  `// targets, comments and trailing commas
{
  "metric": "answer_logprob", /* scored at given positions */
  "sweeps": ["mlp_out", "attn_head_v_by_pos",],
  "pairs": [
    {"clean": "The cat sat on the mat. The cat", "corrupted": "The dog sat on the mat. The cat",
     "targets": [{"pos": 3, "token_id": 3332}, {"pos": 5, "token_id": 262},],},
  ],
}`,
  JSON.stringify(
    {
      name: 'Caf\u00e9 ☕ "quoted" 名前',
      description: 'multibyte text, escapes and emoji 🧪 so that byte-level truncation splits characters',
      metric: 'kl_divergence',
      sweeps: ['attn_head_out_all_pos', 'block_every'],
      pairs: [
        { clean: 'Caf\u00e9 au lait ☕ and "tea"\n says Ünal', corrupted: 'Caf\u00e9 au lait ☕ and "beer"\n says Ünal', answer: ' the' },
        { clean: 'Tab\there 🧪 x', corrupted: 'Tab\there 🧫 x', targets: [{ pos: 1, token_id: 0 }] },
      ],
    },
    null,
    '\t',
  ),
  JSON.stringify({
    name: 'induction-all',
    model: 'induction-2l',
    prepend_bos: false,
    metric: 'answer_prob',
    sweeps: ['attn_head_all_pos_every'],
    induction: { seed: 7, token_range: [10, 20000], length: 9, batch: 3, corrupted: 'BC' },
  }),
  '{"metric":"logit_diff","sweeps":["resid_post"],"pairs":[{"clean":"a b","corrupted":"a c","answer":" d","wrong":" e"}]}',
];

function seedTexts(): { name: string; text: string }[] {
  const files = readdirSync(EXAMPLES)
    .filter((f) => f.endsWith('.patch.json'))
    .sort();
  return [
    ...files.map((f) => ({ name: f, text: readFileSync(join(EXAMPLES, f), 'utf8') })),
    { name: 'template', text: NEW_SPEC_TEMPLATE },
    ...HAND_WRITTEN.map((text, i) => ({ name: `hand-${i}`, text })),
  ];
}

let SEEDS: { name: string; text: string; value: Json }[];
let tok: TextTokenizer;

before(async () => {
  const dir = makeTmpDir('fuzz-tokenizer');
  writeGpt2TokenizerFiles(dir);
  tok = await loadTokenizer(dir, GPT2);
  SEEDS = seedTexts().map((s) => ({ ...s, value: parseSpecText(s.text, s.name) as unknown as Json }));
});

// ---------------------------------------------------------------------------------------------
// The property

const LINE_COL = /^fuzz\.patch\.json:(\d+):(\d+): \S/;
// Errors about the file (or selection) as a whole have no position to give.
const WHOLE_FILE = /^fuzz\.patch\.json: (the file is empty|the spec is [\d.]+ MB, over the \d+ MB limit)/;
const WHOLE_SELECTION =
  /^selection: (the selection is empty|only one line is selected|\d+ lines are selected with no blank line between them|\d+ paragraphs are selected|[\d.]+ MB selected); select two prompts/;

interface Stats {
  cases: number;
  accepted: number;
  resolved: number;
  rejected: number;
  slowestMs: number;
  slowest: string;
}

const stats = new Map<string, Stats>();
function statsFor(category: string): Stats {
  let s = stats.get(category);
  if (!s) stats.set(category, (s = { cases: 0, accepted: 0, resolved: 0, rejected: 0, slowestMs: 0, slowest: '' }));
  return s;
}

/** Checks a rejection: a one-line UserError that points into the text (or is about the whole file). */
function checkSpecError(e: unknown, text: string, where: string, phase: string, f: Failures, file = FILE, base = 0): void {
  const problem = userErrorProblem(e);
  if (problem) return f.add(`${phase}: ${problem}`, where);
  const msg = (e as Error).message;
  if (!msg.startsWith(`${file}:`)) return f.add(`${phase}: message does not start with the file name`, `${where}: ${msg}`);
  const lc = file === FILE ? LINE_COL.exec(msg) : new RegExp(`^${file.replace(/\./g, '\\.')}:(\\d+):(\\d+): \\S`).exec(msg);
  if (!lc) {
    if ((file === FILE ? WHOLE_FILE : WHOLE_SELECTION).test(msg)) return;
    return f.add(`${phase}: no line:column in the message`, `${where}: ${msg}`);
  }
  const loc = e instanceof SpecError ? e.location : undefined;
  if (!loc) return f.add(`${phase}: line:column in the message but no location for the editor`, `${where}: ${msg}`);
  if (loc.line !== Number(lc[1]) || loc.column !== Number(lc[2])) return f.add(`${phase}: location disagrees with the message`, `${where}: ${msg}`);
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const [start, end] = [loc.offset - base, loc.end - base];
  if (!(start >= 0 && start <= body.length && end >= start && end <= body.length + 1)) {
    f.add(`${phase}: location outside the text`, `${where}: offset ${loc.offset}..${loc.end} of ${body.length}: ${msg}`);
  }
}

/** What the engine relies on after resolution (HookedTransformer.validateIds and the metrics). */
function resolvedProblem(r: ResolvedSpec, cfg: ModelConfig): string | undefined {
  const id = (x: unknown) => Number.isInteger(x) && (x as number) >= 0 && (x as number) < cfg.dVocab;
  if (r.pairs.length === 0) return 'no pairs';
  if (typeof r.name !== 'string' || r.name === '') return 'no name';
  for (const [i, p] of r.pairs.entries()) {
    if (p.clean.length !== p.corrupted.length) return `pair ${i}: lengths ${p.clean.length} vs ${p.corrupted.length}`;
    if (p.clean.length === 0 || p.clean.length > cfg.nCtx) return `pair ${i}: length ${p.clean.length} (n_ctx ${cfg.nCtx})`;
    if (!p.clean.every(id) || !p.corrupted.every(id)) return `pair ${i}: an id outside the vocabulary`;
    if (p.answer !== undefined && !id(p.answer)) return `pair ${i}: answer ${p.answer}`;
    if (p.wrong !== undefined && !id(p.wrong)) return `pair ${i}: wrong ${p.wrong}`;
    for (const t of p.targets ?? []) if (!(Number.isInteger(t.pos) && t.pos >= 0 && t.pos < p.clean.length && id(t.token))) return `pair ${i}: target ${JSON.stringify(t)}`;
    if (LOGIT_DIFF_METRICS.includes(r.metric) && (p.answer === undefined || p.wrong === undefined)) return `pair ${i}: ${r.metric} without answer and wrong`;
    if (TARGET_METRICS.includes(r.metric) && p.answer === undefined && p.targets === undefined) return `pair ${i}: ${r.metric} without answer or targets`;
    if (p.cleanRanges && p.cleanRanges.length !== p.clean.length) return `pair ${i}: ${p.cleanRanges.length} ranges for ${p.clean.length} tokens`;
  }
  return undefined;
}

/** One case: parse, then resolve against GPT-2 and a short-context GPT-2. */
function checkSpec(text: string, category: string, where: string, f: Failures, resolve = true): void {
  const s = statsFor(category);
  s.cases++;
  f.cases++;
  const t0 = performance.now();
  const parsed = attempt(() => parseSpecText(text, FILE));
  if (!parsed.ok) {
    s.rejected++;
    checkSpecError(parsed.error, text, where, 'parse', f);
  } else {
    s.accepted++;
    if (resolve) {
      for (const cfg of [GPT2, SHORT_CTX]) {
        const r = attempt(() => resolveSpec(parsed.value, tok, cfg, { file: FILE, text }));
        if (!r.ok) checkSpecError(r.error, text, `${where} (n_ctx ${cfg.nCtx})`, 'resolve', f);
        else {
          s.resolved++;
          const p = resolvedProblem(r.value, cfg);
          if (p) f.add(`resolve: accepted an unrunnable spec (${p})`, where);
        }
      }
    }
  }
  const ms = performance.now() - t0;
  if (ms > s.slowestMs) {
    s.slowestMs = ms;
    s.slowest = where;
  }
}

function finish(t: { diagnostic: (m: string) => void }, f: Failures, categories: string[]): void {
  for (const c of categories) {
    const s = statsFor(c);
    t.diagnostic(`${c}: ${s.cases} cases, ${s.accepted} parsed, ${s.resolved} resolutions, ${s.rejected} rejected; slowest ${s.slowestMs.toFixed(0)} ms (${s.slowest})`);
  }
  assert.equal(f.total, 0, `${f.total} of ${f.cases} cases broke the property:\n${f.report()}`);
}

// ---------------------------------------------------------------------------------------------
// Structured mutations (edit the parsed value, serialize again)

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

function allPaths(v: Json, prefix: Path = [], out: Path[] = []): Path[] {
  out.push(prefix);
  if (Array.isArray(v)) v.forEach((x, i) => allPaths(x, [...prefix, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) allPaths(x, [...prefix, k], out);
  return out;
}

function getAt(v: Json, path: Path): Json {
  let n: Json = v;
  for (const seg of path) n = (n as Record<string | number, Json>)[seg]!;
  return n;
}

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  if (path.length === 0) return value ?? null;
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, Json> | Json[];
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else if (Array.isArray(parent)) parent[last as number] = value;
  else Object.defineProperty(parent, last, { value, enumerable: true, writable: true, configurable: true });
  return root;
}

const clone = (v: Json): Json => JSON.parse(JSON.stringify(v)) as Json;

/** Values of every JSON type, with the edge cases of each: what a half-edited file holds. */
const ODD_VALUES: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  -0.5,
  1e308,
  -1e308,
  5e-324,
  2 ** 53 + 2,
  2 ** 31,
  2 ** 32 + 1,
  50256,
  50257,
  1023,
  1024,
  '',
  ' ',
  'x',
  'resid_pre',
  'logit_diff',
  'AB',
  ' Alice',
  ' Alice Bob',
  '\u0000',
  '\ud800',
  '\ufeff',
  '\r\n',
  '<img src=x onerror=alert(1)>',
  '__proto__',
  'constructor',
  [],
  [0],
  [-1],
  [1.5],
  [null],
  ['resid_pre', 'resid_pre'],
  [[[]]],
  {},
  { clean: 'a' },
  { pos: 0, token_id: 0 },
  { __proto__: 1 } as unknown as Json,
];

const KEY_NAMES = [
  'metric',
  'sweeps',
  'pairs',
  'induction',
  'clean',
  'corrupted',
  'clean_ids',
  'answer',
  'answer_id',
  'wrong',
  'targets',
  'pos',
  'token_id',
  'seed',
  'corrupted_ids',
  'wrong_id',
  'prepend_bos',
  'model',
  'name',
  'token_range',
  'length',
  'batch',
  '__proto__',
  'constructor',
  '',
  'a/b',
  'a~b',
  'x'.repeat(300),
  '"',
  '\u0000',
  'пары',
];

function typo(rng: Rng, s: string): string {
  if (s.length === 0) return 'x';
  const i = rng.int(0, s.length);
  switch (rng.int(0, 5)) {
    case 0:
      return s.slice(0, i) + s.slice(i + 1);
    case 1:
      return s.slice(0, i) + rng.pick(['a', 'e', '_', 's', ' ']) + s.slice(i);
    case 2:
      return s.toUpperCase();
    case 3:
      return i + 1 < s.length ? s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2) : `${s}s`;
    default:
      return `${s}_`;
  }
}

function randomValue(rng: Rng, depth = 0): Json {
  const r = rng.int(0, 10);
  if (r < 5 || depth > 2) return clone(rng.pick(ODD_VALUES));
  if (r === 5) return rng.int(-5, 60000);
  if (r === 6) return typo(rng, rng.pick(['resid_pre', 'logit_diff', 'answer_logprob', 'attn_head_out_all_pos', 'AB', ' Alice']));
  if (r === 7) return Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth + 1));
  if (r === 8) return Object.fromEntries(Array.from({ length: rng.int(0, 3) }, () => [rng.pick(KEY_NAMES), randomValue(rng, depth + 1)]));
  return 'word '.repeat(rng.int(1, 2000));
}

function mutateValue(rng: Rng, root: Json): Json {
  const paths = allPaths(root);
  const path = rng.pick(paths);
  const node = getAt(root, path);
  switch (rng.int(0, 9)) {
    case 0:
      return setAt(root, path, randomValue(rng));
    case 1:
      return path.length > 0 ? setAt(root, path, undefined) : root;
    case 2: {
      // An unknown key, or a misspelt known one.
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return setAt(root, path, randomValue(rng));
      const key = rng.chance(0.5) ? rng.pick(KEY_NAMES) : typo(rng, rng.pick(Object.keys(node).concat(['metric'])));
      return setAt(root, [...path, key], randomValue(rng));
    }
    case 3: {
      // A key renamed (typo): the value stays, the name is wrong.
      if (path.length === 0 || typeof path[path.length - 1] !== 'string') return setAt(root, path, randomValue(rng));
      const parentPath = path.slice(0, -1);
      setAt(root, path, undefined);
      return setAt(root, [...parentPath, typo(rng, path[path.length - 1] as string)], node);
    }
    case 4:
      if (Array.isArray(node) && node.length > 0) node.push(clone(rng.pick(node)));
      return root;
    case 5:
      return setAt(root, path, rng.chance(0.5) ? [node] : { value: node });
    case 6:
      if (typeof node === 'number') return setAt(root, path, rng.pick([node + 1, -node - 1, node * 1e6, node + 0.5, 2 ** 53, -(2 ** 31)]));
      if (typeof node === 'string') return setAt(root, path, rng.pick([node + node, node.slice(1), node.trim(), `${node}\n${node}`, '']));
      return setAt(root, path, randomValue(rng));
    case 7: {
      // The same value in two places (a copy-paste).
      const other = rng.pick(paths);
      return setAt(root, path, clone(getAt(root, other)));
    }
    default:
      if (Array.isArray(node)) node.length = rng.int(0, node.length + 1);
      return root;
  }
}

/** Serializes as an editor might hold it: indented or not, CRLF, a BOM, comments, trailing commas. */
function serialize(rng: Rng, v: Json): string {
  let text = JSON.stringify(v, null, rng.pick([undefined, 2, '\t', 1]));
  if (rng.chance(0.2)) text = text.replace(/,\n/g, () => (rng.chance(0.3) ? ', // note\n' : ',\n'));
  if (rng.chance(0.2)) text = text.replace(/\n(\s*)([}\]])/g, (_m, sp: string, b: string) => (rng.chance(0.5) ? `,\n${sp}${b}` : `\n${sp}/* end */${b}`));
  if (rng.chance(0.15)) text = text.replace(/\n/g, '\r\n');
  if (rng.chance(0.1)) text = `\ufeff${text}`;
  return text;
}

test('spec parser and resolver: structured edits of valid specs (wrong types, missing and unknown keys, typos)', (t) => {
  const f = new Failures();
  const rng = new Rng(0x5eed01);
  const N = 2500;
  for (let i = 0; i < N; i++) {
    const seed = rng.pick(SEEDS);
    let v = clone(seed.value);
    const edits = rng.int(1, 4);
    for (let k = 0; k < edits; k++) v = mutateValue(rng, v);
    const text = serialize(rng, v);
    checkSpec(text, 'structured edits', `structured #${i} from ${seed.name}: ${preview(text)}`, f);
  }
  finish(t, f, ['structured edits']);
});

test('spec parser and resolver: every node of every seed replaced by every odd value', (t) => {
  const f = new Failures();
  let n = 0;
  for (const seed of SEEDS) {
    for (const path of allPaths(seed.value)) {
      // Every value at shallow nodes; a sample deeper (long id lists would repeat the same case).
      const values = path.length <= 3 ? ODD_VALUES : ODD_VALUES.filter((_, k) => (k + n) % 6 === 0);
      for (const value of values) {
        const v = setAt(clone(seed.value), path, clone(value));
        const text = JSON.stringify(v, null, 2);
        checkSpec(text, 'wrong types', `${seed.name} at ${JSON.stringify(path)} = ${preview(JSON.stringify(value) ?? '', 40)}`, f);
        n++;
      }
    }
  }
  finish(t, f, ['wrong types']);
});

// ---------------------------------------------------------------------------------------------
// Text mutations

const TOKENS = [
  '{',
  '}',
  '[',
  ']',
  ',',
  ':',
  '"',
  '\\',
  "'",
  'NaN',
  'Infinity',
  '-Infinity',
  '+1',
  '.5',
  '01',
  '1e999',
  '-',
  'true',
  'nul',
  'undefined',
  '/*',
  '*/',
  '//',
  '\n',
  '\r',
  '\r\n',
  '\t',
  '\u2028',
  '\u0000',
  '\ufeff',
  '\ud800',
  '\udc00',
  '😀',
  '\\u12',
  '\\uD800',
  '\\x41',
  ' ',
  '0x10',
  '1_000',
  '"metric"',
  '"sweeps":',
  '"pairs": [',
  '{"clean": "a", "corrupted": "b"}',
];

function mutateText(rng: Rng, text: string): string {
  let s = text;
  const ops = rng.int(1, 5);
  for (let k = 0; k < ops; k++) {
    const i = rng.int(0, s.length + 1);
    switch (rng.int(0, 5)) {
      case 0:
        s = s.slice(0, i) + rng.pick(TOKENS) + s.slice(i);
        break;
      case 1:
        s = s.slice(0, i) + s.slice(i + rng.int(1, 12));
        break;
      case 2:
        s = s.slice(0, i) + String.fromCharCode(rng.int(0, 0x3000)) + s.slice(i + 1);
        break;
      case 3: {
        const j = rng.int(0, s.length + 1);
        s = s.slice(0, i) + s.slice(Math.min(i, j), Math.max(i, j)) + s.slice(i);
        break;
      }
      default:
        s = s.slice(0, i) + rng.pick(TOKENS) + s.slice(i + 1);
    }
  }
  return s;
}

test('spec parser and resolver: random character edits (punctuation, NaN/Infinity, escapes, surrogates)', (t) => {
  const f = new Failures();
  const rng = new Rng(0x5eed02);
  for (let i = 0; i < 2500; i++) {
    const seed = rng.pick(SEEDS);
    const text = mutateText(rng, seed.text);
    checkSpec(text, 'character edits', `chars #${i} from ${seed.name}: ${preview(text)}`, f);
  }
  finish(t, f, ['character edits']);
});

test('spec parser: every number literal replaced by NaN, Infinity, huge, tiny and malformed numbers', (t) => {
  const f = new Failures();
  const LITERALS = [
    'NaN',
    'Infinity',
    '-Infinity',
    '1e400',
    '-1e400',
    '1e-400',
    '9007199254740993',
    '1e21',
    '-0',
    '0x10',
    '+1',
    '.5',
    '1.',
    '01',
    '1e',
    '--1',
    '1.5e+3',
    '1E2',
    '12abc',
    '٣',
  ];
  for (const seed of SEEDS) {
    const numbers = [...seed.text.matchAll(/(?<=[:[,]\s*)-?\d+(\.\d+)?([eE][+-]?\d+)?(?=\s*[,\]}])/g)];
    for (const m of numbers.slice(0, 40)) {
      for (const lit of LITERALS) {
        const text = seed.text.slice(0, m.index) + lit + seed.text.slice(m.index + m[0].length);
        checkSpec(text, 'number literals', `${seed.name} @${m.index}: ${m[0]} -> ${lit}`, f);
      }
    }
  }
  finish(t, f, ['number literals']);
});

test('spec parser: truncation at every character and at every byte (splitting UTF-8 sequences)', (t) => {
  const f = new Failures();
  for (const name of ['speaker.patch.json', 'template', 'hand-2', 'hand-1']) {
    const seed = SEEDS.find((s) => s.name === name)!;
    for (let i = 0; i <= seed.text.length; i++) checkSpec(seed.text.slice(0, i), 'truncation', `${name} cut at char ${i}`, f, i === seed.text.length);
    const bytes = Buffer.from(seed.text, 'utf8');
    for (let i = 0; i <= bytes.length; i++) {
      // Decoded as the editor and the CLI decode a file: invalid UTF-8 becomes U+FFFD.
      checkSpec(bytes.subarray(0, i).toString('utf8'), 'truncation', `${name} cut at byte ${i}`, f, false);
    }
  }
  finish(t, f, ['truncation']);
});

const BAD_UTF8 = [[0xff], [0xfe], [0xc0, 0x80], [0x80], [0xbf], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf0, 0x9f], [0xc3], [0xef, 0xbb, 0xbf], [0x00]];

test('spec parser and resolver: invalid UTF-8, BOMs, UTF-16 files, CRLF and lone CR', (t) => {
  const f = new Failures();
  const rng = new Rng(0x5eed03);
  for (let i = 0; i < 1200; i++) {
    const seed = rng.pick(SEEDS);
    const bytes = Buffer.from(seed.text, 'utf8');
    const parts: Buffer[] = [];
    let at = 0;
    for (let k = rng.int(1, 4); k > 0; k--) {
      const cut = rng.int(at, bytes.length + 1);
      parts.push(bytes.subarray(at, cut), Buffer.from(rng.pick(BAD_UTF8)));
      at = cut;
    }
    parts.push(bytes.subarray(at));
    const text = Buffer.concat(parts).toString('utf8');
    checkSpec(text, 'invalid UTF-8', `utf8 #${i} from ${seed.name}: ${preview(text)}`, f);
  }
  for (const seed of SEEDS) {
    const variants: [string, string][] = [
      ['BOM', `\ufeff${seed.text}`],
      ['BOM bytes', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(seed.text)]).toString('utf8')],
      ['two BOMs', `\ufeff\ufeff${seed.text}`],
      ['BOM after whitespace', ` \ufeff${seed.text}`],
      ['UTF-16LE with BOM read as UTF-8', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(seed.text, 'utf16le')]).toString('utf8')],
      ['UTF-16BE with BOM read as UTF-8', Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(seed.text, 'utf16le').swap16()]).toString('utf8')],
      ['UTF-16LE without BOM read as UTF-8', Buffer.from(seed.text, 'utf16le').toString('utf8')],
      ['latin1 read as UTF-8', Buffer.from(seed.text, 'latin1').toString('utf8')],
      ['CRLF', seed.text.replace(/\n/g, '\r\n')],
      ['lone CR', seed.text.replace(/\n/g, '\r')],
      ['CRLF with BOM', `\ufeff${seed.text.replace(/\n/g, '\r\n')}`],
      ['NUL padded', `${seed.text}\u0000\u0000`],
      ['trailing garbage', `${seed.text}\n}`],
    ];
    for (const [what, text] of variants) checkSpec(text, 'BOM/encoding/line ends', `${seed.name}: ${what}`, f);
  }
  finish(t, f, ['invalid UTF-8', 'BOM/encoding/line ends']);
});

test('spec parser: random bytes, random printable text and JSON token soup', (t) => {
  const f = new Failures();
  const rng = new Rng(0x5eed04);
  for (let i = 0; i < 600; i++) {
    const text = rng.bytes(rng.int(0, 3000)).toString('utf8');
    checkSpec(text, 'random input', `bytes #${i}: ${preview(text)}`, f);
  }
  for (let i = 0; i < 600; i++) {
    const text = Array.from({ length: rng.int(0, 400) }, () => String.fromCharCode(rng.int(32, 127))).join('');
    checkSpec(text, 'random input', `ascii #${i}: ${preview(text)}`, f);
  }
  for (let i = 0; i < 800; i++) {
    const text = `${rng.chance(0.7) ? '{' : ''}${Array.from({ length: rng.int(0, 60) }, () => rng.pick(TOKENS)).join(rng.pick(['', ' ', '\n']))}`;
    checkSpec(text, 'random input', `soup #${i}: ${preview(text)}`, f);
  }
  finish(t, f, ['random input']);
});

// ---------------------------------------------------------------------------------------------
// Size: deep nesting, long strings, many items

test('spec parser and resolver: deep nesting (up to 10^5 levels), MB-long strings and keys, huge lists', (t) => {
  const f = new Failures();
  const base = (extra: string) => `{"metric": "logit_diff", "sweeps": ["resid_pre"], ${extra}}`;
  const pair = (clean: string, corrupted = clean) => JSON.stringify({ clean, corrupted, answer: ' A', wrong: ' B' });
  const mb = (n: number, unit = 'a ') => unit.repeat(Math.ceil((n * 2 ** 20) / unit.length));
  const cases: [string, string][] = [
    ['[ x 1e5', '['.repeat(100_000)],
    ['[ x 1e5 closed', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
    ['{"a": x 1e4', '{"a":'.repeat(10_000)],
    ['{"a": x 1e5 closed', `${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`],
    ['[{ alternating x 5e4', '[{"k":'.repeat(50_000)],
    ['pairs nested 1e4', base(`"pairs": ${'['.repeat(10_000)}${']'.repeat(10_000)}`)],
    ['pairs nested 127 (under the parser limit)', base(`"pairs": ${'['.repeat(127)}${']'.repeat(127)}`)],
    ['description nested 126 objects', `{"metric": "logit_diff", "sweeps": ["resid_pre"], "pairs": [${pair('a b')}], "description": ${'{"d":'.repeat(126)}1${'}'.repeat(126)}}`],
    ['a 10 MB + 1 char file', ' '.repeat(MAX_SPEC_CHARS + 1)],
    ['a 9 MB string in description', base(`"pairs": [${pair('a b')}], "description": "${mb(9, 'x')}"`)],
    ['a 2 MB clean prompt', base(`"pairs": [${pair(mb(2))}]`)],
    ['a 1 MB prompt of one repeated character', base(`"pairs": [${pair(mb(1, 'x'))}]`)],
    ['a 4 MB unknown metric', `{"metric": "${mb(4, 'x')}", "sweeps": ["resid_pre"], "pairs": [${pair('a b')}]}`],
    ['a 4 MB unknown sweep', `{"metric": "logit_diff", "sweeps": ["${mb(4, 'resid_pre')}"], "pairs": [${pair('a b')}]}`],
    ['a 4 MB key', base(`"pairs": [${pair('a b')}], "${mb(4, 'k')}": 1`)],
    ['a 4 MB key inside a pair', base(`"pairs": [{"${mb(4, 'k')}": 1}]`)],
    ['a 4 MB answer', base(`"pairs": [{"clean": "a b", "corrupted": "a c", "answer": "${mb(4)}", "wrong": " B"}]`)],
    ['a 4 MB string of escapes', base(`"pairs": [${pair('a b')}], "description": "${mb(4, '\\n\\u0041')}"`)],
    ['a 3 MB string with a raw line break at the end', base(`"pairs": [${pair('a b')}], "description": "${mb(3, 'x')}\n"`)],
    ['an unterminated 4 MB string', `{"metric": "${mb(4, 'x')}`],
    ['a 4 MB comment, unterminated', `{/*${mb(4, 'x')}`],
    ['a 4 MB number', `{"metric": ${'9'.repeat(4 * 2 ** 20)}}`],
    ['a 4 MB word', `{"metric": ${'t'.repeat(4 * 2 ** 20)}}`],
    ['100k sweeps', `{"metric": "logit_diff", "sweeps": ${JSON.stringify(Array.from({ length: 100_000 }, () => 'resid_pre'))}, "pairs": [${pair('a b')}]}`],
    ['100k distinct unknown sweeps', `{"metric": "logit_diff", "sweeps": ${JSON.stringify(Array.from({ length: 100_000 }, (_, i) => `s${i}`))}, "pairs": [${pair('a b')}]}`],
    ['20k pairs', base(`"pairs": [${Array.from({ length: 20_000 }, (_, i) => pair(`a b ${i % 10}`)).join(',')}]`)],
    [
      '1M token ids',
      base(`"pairs": [{"clean_ids": ${JSON.stringify(Array.from({ length: 1_000_000 }, (_, i) => i % 50000))}, "corrupted_ids": [1], "answer_id": 1, "wrong_id": 2}]`),
    ],
    [
      '1M equal-length ids (longer than the context)',
      base(
        `"pairs": [{"clean_ids": ${JSON.stringify(Array.from({ length: 1_000_000 }, () => 5))}, "corrupted_ids": ${JSON.stringify(Array.from({ length: 1_000_000 }, () => 6))}, "answer_id": 1, "wrong_id": 2}]`,
      ),
    ],
    ['100k keys in a pair', base(`"pairs": [{${Array.from({ length: 100_000 }, (_, i) => `"k${i}": ${i}`).join(',')}}]`)],
    ['100k duplicate keys', `{${Array.from({ length: 100_000 }, () => '"metric": "logit_diff"').join(',')}}`],
    [
      '100k targets',
      base(`"pairs": [{"clean": "a b", "corrupted": "a c", "targets": ${JSON.stringify(Array.from({ length: 100_000 }, (_, i) => ({ pos: i, token_id: 1 })))}}]`).replace(
        'logit_diff',
        'answer_logprob',
      ),
    ],
    ['induction length 1e9', '{"metric": "answer_logprob", "sweeps": ["resid_pre"], "induction": {"seed": 0, "corrupted": "AB", "length": 1000000000}}'],
    ['induction batch 1e9', '{"metric": "answer_logprob", "sweeps": ["resid_pre"], "induction": {"seed": 0, "corrupted": "AB", "batch": 1000000000, "length": 5}}'],
    ['induction range 1e12', '{"metric": "answer_logprob", "sweeps": ["resid_pre"], "induction": {"seed": 0, "corrupted": "AB", "token_range": [0, 1000000000000]}}'],
    ['induction seed 1e300', '{"metric": "answer_logprob", "sweeps": ["resid_pre"], "induction": {"seed": 1e300, "corrupted": "AB"}}'],
    ['induction seed -1', '{"metric": "answer_logprob", "sweeps": ["resid_pre"], "induction": {"seed": -1, "corrupted": "AB"}}'],
    ['ids of 1e300', base('"pairs": [{"clean_ids": [1e300], "corrupted_ids": [1e300], "answer_id": 1e300, "wrong_id": 2}]')],
    ['target pos 1e300', base('"pairs": [{"clean": "a b", "corrupted": "a c", "targets": [{"pos": 1e300, "token_id": 1}]}]').replace('logit_diff', 'answer_logprob')],
  ];
  for (const [what, text] of cases) {
    const t0 = performance.now();
    checkSpec(text, 'size', what, f);
    t.diagnostic(`${what}: ${(performance.now() - t0).toFixed(0)} ms`);
  }
  finish(t, f, ['size']);
});

// ---------------------------------------------------------------------------------------------
// Selections

const PROMPTS = [
  'When Alice and Bob went to the park, Bob gave a ball to',
  'The Eiffel Tower is in',
  '  indented prompt with trailing space  ',
  'tabs\tinside',
  'émoji 🧪 prompt',
  '{not json at all',
  '"quoted"',
  'x',
  '\u00a0nbsp\u00a0',
  '<script>alert(1)</script>',
  'a'.repeat(5000),
];
const EOLS = ['\n', '\r\n', '\r', '\n\n', '\r\n\r\n', '\n \n', '\n\t\n', '\r\r', '\u2028'];

/** A selection as an editor gives it: lines and paragraphs with any line ends, or a JSON spec. */
function randomSelection(rng: Rng): string {
  const r = rng.int(0, 10);
  if (r < 6) {
    const n = rng.int(0, 5);
    let s = rng.chance(0.2) ? rng.pick(['', ' ', '\n', '\r\n', '\t\n']) : '';
    for (let k = 0; k < n; k++) s += (k > 0 ? rng.pick(EOLS) : '') + rng.pick(PROMPTS);
    if (rng.chance(0.3)) s += rng.pick(EOLS);
    if (rng.chance(0.1)) s = `\ufeff${s}`;
    return rng.chance(0.2) ? mutateText(rng, s) : s;
  }
  if (r < 8) {
    const seed = rng.pick(SEEDS);
    const text = rng.chance(0.5) ? seed.text : mutateText(rng, seed.text);
    return `${rng.pick(['', ' ', '\n  ', '\ufeff', '\r\n'])}${text}`;
  }
  if (r < 9) return rng.bytes(rng.int(0, 500)).toString('utf8');
  return serialize(rng, mutateValue(rng, clone(rng.pick(SEEDS).value)));
}

test('selection parser: thousands of selections (lines, paragraphs, CRLF, BOM, JSON, garbage) resolve or fail in one line', (t) => {
  const f = new Failures();
  const rng = new Rng(0x5eed05);
  let prompts = 0;
  let specs = 0;
  let rejected = 0;
  const N = 3000;
  for (let i = 0; i < N; i++) {
    const text = randomSelection(rng);
    const offset = rng.pick([0, 1, 17, 100_000]);
    const where = `selection #${i} at ${offset}: ${preview(text)}`;
    f.cases++;
    const r = attempt(() => parseSelection(text, offset));
    if (!r.ok) {
      rejected++;
      // Locations are document offsets: the selection's own offset, plus one for a BOM it starts with.
      const bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
      checkSpecError(r.error, text.slice(bom), where, 'selection', f, 'selection', offset + bom);
      continue;
    }
    const v = r.value;
    if ('spec' in v) {
      specs++;
      const res = attempt(() => resolveSpec(v.spec, tok, GPT2, { file: 'selection', text: v.text, textOffset: v.offset }));
      if (!res.ok) checkSpecError(res.error, v.text, where, 'selection resolve', f, 'selection', v.offset);
      else {
        const p = resolvedProblem(res.value, GPT2);
        if (p) f.add(`selection resolve: accepted an unrunnable spec (${p})`, where);
        for (const pair of res.value.pairs) {
          for (const range of pair.cleanRanges ?? []) {
            if (range && !(range[0] >= offset && range[1] <= offset + text.length && range[0] <= range[1])) f.add('selection resolve: token range outside the selection', where);
          }
        }
      }
      continue;
    }
    prompts++;
    for (const which of ['clean', 'corrupted'] as const) {
      const src = v[which];
      if (src.text === '' || src.text.trim() !== src.text) f.add('selection: prompt empty or not trimmed', `${where}: ${preview(src.text)}`);
      // Each prompt character must come from the document character it says it came from.
      for (let k = 0; k < src.text.length; k++) {
        const docAt = (src.offsets ? src.offsets[k]! : src.offset + k) - offset;
        const ch = text[docAt];
        if (!(ch === src.text[k] || (src.text[k] === '\n' && ch === '\r'))) {
          f.add('selection: source offsets do not map back to the document', `${where}: ${which}[${k}]`);
          break;
        }
      }
    }
    // Two prompts are resolved as the extension resolves them: a spec with the prompts as sources.
    const spec: PatchSpec = { metric: 'logit_diff', sweeps: ['resid_pre'], pairs: [{ clean: v.clean.text, corrupted: v.corrupted.text, answer: ' the', wrong: ' a' }] };
    const res = attempt(() => resolveSpec(spec, tok, SHORT_CTX, { file: 'selection', sources: [{ clean: v.clean, corrupted: v.corrupted }] }));
    if (!res.ok) {
      const p = userErrorProblem(res.error);
      if (p) f.add(`selection prompts resolve: ${p}`, where);
      else if (!/^selection: pairs\[0\]/.test((res.error as Error).message))
        f.add('selection prompts resolve: error does not name the pair', `${where}: ${(res.error as Error).message}`);
    } else {
      const p = resolvedProblem(res.value, SHORT_CTX);
      if (p) f.add(`selection prompts resolve: unrunnable (${p})`, where);
      for (const range of [...(res.value.pairs[0]!.cleanRanges ?? []), ...(res.value.pairs[0]!.corruptedRanges ?? [])]) {
        if (range && !(range[0] >= offset && range[1] <= offset + text.length && range[0] <= range[1])) {
          f.add('selection prompts resolve: token range outside the selection', `${where}: ${JSON.stringify(range)}`);
          break;
        }
      }
    }
  }
  t.diagnostic(`selections: ${N} cases, ${prompts} two-prompt selections, ${specs} JSON specs, ${rejected} rejected`);
  assert.equal(f.total, 0, `${f.total} of ${f.cases} cases broke the property:\n${f.report()}`);
});
