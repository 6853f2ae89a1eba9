/**
 * Reading a `.patch.json` spec (JSON with comments and trailing commas, as VS Code's jsonc mode
 * edits it) and resolving it against a model's tokenizer into token ids the engine can run.
 *
 * Every error a user can cause is a one-line SpecError (a UserError) naming the file, the line and
 * column when the text is known, the JSON path (`pairs[1].answer`), and how to fix it.
 */
import { basename } from 'node:path';
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import schemaJson from '../../../schemas/patch.schema.json';
import {
  INDUCTION_DEFAULTS,
  INDUCTION_METRICS,
  LOGIT_DIFF_METRICS,
  MAX_SPEC_CHARS,
  SPEC_FILE_SUFFIX,
  TARGET_METRICS,
  type InductionSpec,
  type PairSpec,
  type PatchSpec,
  type ResolvedPair,
  type ResolvedSpec,
  type ResolvedTarget,
  type SourceText,
  toDocumentRange,
} from '../../protocol/spec';
import type { ModelConfig } from '../model/config';
import type { TextTokenizer } from '../model/tokenizer';
import { UserError } from '../userError';
import { mulberry32 } from '../random';

// ---------------------------------------------------------------------------------------------
// Errors and locations

export interface SpecLocation {
  file: string;
  /** UTF-16 offsets in the document the spec text came from (selection offset already added). */
  offset: number;
  end: number;
  /** 1-based, within the text that was parsed. */
  line: number;
  column: number;
}

/** A UserError that also says where in the document it is, so the editor can underline it. */
export class SpecError extends UserError {
  constructor(
    message: string,
    readonly location?: SpecLocation,
  ) {
    super(message);
  }
}

type PathSeg = string | number;

/** `pairs[1].answer`; keys that are not identifiers in brackets. */
export function formatPath(path: readonly PathSeg[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s === '' ? '(top level)' : s;
}

/** A user's string inside a one-line message: escaped (no raw line breaks) and shortened. */
function quote(s: string, max = 60): string {
  // JSON.stringify leaves U+2028/2029 and NEL raw, and editors and notifications break lines on them.
  const body = JSON.stringify(s)
    .slice(1, -1)
    .replace(/\\"/g, '"')
    .replace(/'/g, "\\'")
    .replace(/[\u2028\u2029\u0085]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `'${body.length > max ? `${body.slice(0, max - 1)}…` : body}'`;
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: end - lineStart + 1 };
}

/** The parsed text, so that errors can point into it. `base` is its offset in the editor document. */
interface TextInfo {
  text: string;
  base: number;
}

function errorAt(file: string, info: TextInfo | undefined, start: number | undefined, end: number | undefined, message: string): SpecError {
  if (info === undefined || start === undefined) return new SpecError(`${file}: ${message}`);
  const { line, column } = lineColumn(info.text, start);
  return new SpecError(`${file}:${line}:${column}: ${message}`, {
    file,
    offset: info.base + start,
    end: info.base + Math.max(start, end ?? start),
    line,
    column,
  });
}

// ---------------------------------------------------------------------------------------------
// JSON with comments

interface NodeVisit {
  /** Live during the parse; copy it to keep it. */
  path: readonly PathSeg[];
  start: number;
  end: number;
  /** Where the property name starts, for object members. */
  keyStart: number | undefined;
  value: unknown;
}

// A spec is a few levels deep; a bound keeps a malicious or broken file from exhausting the stack.
const MAX_DEPTH = 128;

class JsoncParser {
  private pos = 0;
  private readonly path: PathSeg[] = [];

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly info: TextInfo,
    private readonly visit?: (v: NodeVisit) => void,
  ) {}

  parse(): unknown {
    const v = this.value(0, undefined);
    this.ws();
    if (this.pos < this.text.length) {
      this.fail(this.pos, `unexpected ${this.describe(this.pos)} after the end of the JSON value`, 'a spec is one JSON object; remove what follows its closing }');
    }
    return v;
  }

  private fail(at: number, reason: string, hint: string): never {
    throw errorAt(this.file, this.info, at, at + 1, `not valid JSON: ${reason}; ${hint}`);
  }

  private describe(at: number): string {
    if (at >= this.text.length) return 'end of file';
    const cp = this.text.codePointAt(at)!;
    return `character ${quote(String.fromCodePoint(cp))}`;
  }

  private ws(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else if (c === 47 && t.charCodeAt(this.pos + 1) === 47) {
        while (this.pos < t.length && t.charCodeAt(this.pos) !== 10 && t.charCodeAt(this.pos) !== 13) this.pos++;
      } else if (c === 47 && t.charCodeAt(this.pos + 1) === 42) {
        const close = t.indexOf('*/', this.pos + 2);
        if (close < 0) this.fail(this.pos, 'the /* comment is not closed', 'add */ where the comment ends');
        this.pos = close + 2;
      } else return;
    }
  }

  private value(depth: number, keyStart: number | undefined): unknown {
    this.ws();
    const start = this.pos;
    const t = this.text;
    if (start >= t.length) this.fail(start, 'unexpected end of file', 'a bracket, brace or quote is not closed, or a value is missing');
    const c = t[start]!;
    let v: unknown;
    if (c === '{') v = this.object(depth);
    else if (c === '[') v = this.array(depth);
    else if (c === '"') v = this.string();
    else if (c === '-' || (c >= '0' && c <= '9')) v = this.number();
    else if (/[A-Za-z_$]/.test(c)) v = this.word();
    else if (c === "'") this.fail(start, 'strings need double quotes, not single quotes', "write \"text\" instead of 'text'");
    else if (c === ',' || c === ']' || c === '}' || c === ':') {
      this.fail(start, `unexpected ${quote(c)} where a value should be`, 'a value is missing, or there is one comma too many');
    } else this.fail(start, `unexpected ${this.describe(start)}`, 'check the punctuation just before it');
    this.visit?.({ path: this.path, start, end: this.pos, keyStart, value: v });
    return v;
  }

  private object(depth: number): Record<string, unknown> {
    const t = this.text;
    if (depth >= MAX_DEPTH) this.fail(this.pos, `nested more than ${MAX_DEPTH} levels deep`, 'a spec needs only a few levels; check for runaway brackets');
    this.pos++;
    const obj: Record<string, unknown> = {};
    const seen = new Map<string, number>();
    for (;;) {
      this.ws();
      if (this.pos >= t.length) this.fail(this.pos, 'unexpected end of file inside an object', 'add the closing }');
      const c = t[this.pos]!;
      if (c === '}') {
        this.pos++;
        return obj;
      }
      if (c !== '"') {
        if (c === "'") this.fail(this.pos, 'property names need double quotes, not single quotes', 'write "name": …');
        if (/[A-Za-z_$]/.test(c)) this.fail(this.pos, 'property names need double quotes', 'write "name": … rather than name: …');
        this.fail(this.pos, `expected a property name in double quotes or '}', found ${this.describe(this.pos)}`, 'check for a stray comma or a missing quote');
      }
      const keyStart = this.pos;
      const key = this.string();
      const first = seen.get(key);
      if (first !== undefined) {
        const { line } = lineColumn(t, first);
        throw errorAt(this.file, this.info, keyStart, this.pos, `duplicate key ${quote(key)} ${this.path.length === 0 ? 'at the top level' : `in ${formatPath(this.path)}`} (first on line ${line}); remove one of them`);
      }
      seen.set(key, keyStart);
      this.ws();
      if (t[this.pos] !== ':') this.fail(this.pos, `expected ':' after the property name ${quote(key)}, found ${this.describe(this.pos)}`, 'write "name": value');
      this.pos++;
      this.path.push(key);
      const v = this.value(depth + 1, keyStart);
      this.path.pop();
      // defineProperty, not assignment: a key named __proto__ must stay plain data.
      Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
      this.ws();
      const d = t[this.pos];
      if (d === ',') this.pos++;
      else if (d === '}') {
        this.pos++;
        return obj;
      } else if (this.pos >= t.length) this.fail(this.pos, 'unexpected end of file inside an object', 'add the closing }');
      else this.fail(this.pos, `expected ',' or '}' after the value of ${quote(key)}, found ${this.describe(this.pos)}`, 'a comma is probably missing between two properties');
    }
  }

  private array(depth: number): unknown[] {
    const t = this.text;
    if (depth >= MAX_DEPTH) this.fail(this.pos, `nested more than ${MAX_DEPTH} levels deep`, 'a spec needs only a few levels; check for runaway brackets');
    this.pos++;
    const arr: unknown[] = [];
    for (;;) {
      this.ws();
      if (this.pos >= t.length) this.fail(this.pos, 'unexpected end of file inside a list', 'add the closing ]');
      if (t[this.pos] === ']') {
        this.pos++;
        return arr;
      }
      this.path.push(arr.length);
      arr.push(this.value(depth + 1, undefined));
      this.path.pop();
      this.ws();
      const d = t[this.pos];
      if (d === ',') this.pos++;
      else if (d === ']') {
        this.pos++;
        return arr;
      } else if (this.pos >= t.length) this.fail(this.pos, 'unexpected end of file inside a list', 'add the closing ]');
      else this.fail(this.pos, `expected ',' or ']' in a list, found ${this.describe(this.pos)}`, 'a comma is probably missing between two items');
    }
  }

  private string(): string {
    const t = this.text;
    const open = this.pos;
    let i = open + 1;
    let chunk = i;
    let out = '';
    for (;;) {
      if (i >= t.length) this.fail(open, 'the string is not closed', 'add the closing "');
      const c = t.charCodeAt(i);
      if (c === 34) {
        out += t.slice(chunk, i);
        this.pos = i + 1;
        return out;
      }
      if (c === 92) {
        out += t.slice(chunk, i);
        const e = t[i + 1];
        const simple = e === undefined ? undefined : SIMPLE_ESCAPES[e];
        if (simple !== undefined) {
          out += simple;
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(t.slice(i + 2, i + 6), 16));
          i += 6;
        } else {
          this.fail(i, `invalid escape ${quote(t.slice(i, i + 2))} in a string`, 'write a backslash as \\\\ (JSON escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
        }
        chunk = i;
        continue;
      }
      if (c < 0x20) {
        if (c === 10 || c === 13) this.fail(i, 'line break inside a string', 'JSON strings cannot span lines; write the line break as \\n');
        this.fail(i, `control character U+${c.toString(16).padStart(4, '0')} inside a string`, 'write it as a \\u escape');
      }
      i++;
    }
  }

  private number(): number {
    const t = this.text;
    const start = this.pos;
    let i = start;
    let c = t.charCodeAt(i);
    if (c === 45) c = t.charCodeAt(++i);
    let ok: boolean;
    if (c === 48) {
      ok = true;
      c = t.charCodeAt(++i);
    } else {
      const from = i;
      while (c >= 48 && c <= 57) c = t.charCodeAt(++i);
      ok = i > from;
    }
    if (ok && c === 46) {
      const from = ++i;
      c = t.charCodeAt(i);
      while (c >= 48 && c <= 57) c = t.charCodeAt(++i);
      ok = i > from;
    }
    if (ok && (c === 101 || c === 69)) {
      c = t.charCodeAt(++i);
      if (c === 43 || c === 45) c = t.charCodeAt(++i);
      const from = i;
      while (c >= 48 && c <= 57) c = t.charCodeAt(++i);
      ok = i > from;
    }
    // A number runs into letters, digits or a dot: '01', '1.', '12abc'.
    if (!ok || (c >= 48 && c <= 57) || c === 46 || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95) {
      const bad = /^-?[\w.+-]*/.exec(t.slice(start, start + 40))![0];
      this.fail(start, `invalid number ${quote(bad || t[start]!)}`, 'JSON numbers look like 12, -3, 0.5 or 1e-3 (no leading zeros, no trailing dot)');
    }
    const n = Number(t.slice(start, i));
    if (!Number.isFinite(n)) this.fail(start, `number ${quote(t.slice(start, i))} is out of range`, 'use a smaller number');
    this.pos = i;
    return n;
  }

  private word(): boolean | null {
    WORD.lastIndex = this.pos;
    const w = WORD.exec(this.text)![0];
    if (w === 'true' || w === 'false' || w === 'null') {
      this.pos += w.length;
      return w === 'true' ? true : w === 'false' ? false : null;
    }
    this.fail(this.pos, `unexpected word ${quote(w)}`, 'text must be in double quotes; JSON values are numbers, "strings", true, false, null, lists and objects');
  }
}

const SIMPLE_ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const WORD = /[A-Za-z_$][\w$]*/y;

/**
 * Parses JSON that may hold // and /* *\/ comments and trailing commas. Syntax errors throw a
 * SpecError `FILE:LINE:COL: not valid JSON: …`. `base` is where `text` starts in the editor document.
 */
export function parseJsonc(text: string, file: string, base = 0): unknown {
  return new JsoncParser(text, file, { text, base }).parse();
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function checkSize(text: string, file: string): void {
  if (text.length > MAX_SPEC_CHARS) {
    const mb = (text.length / (1024 * 1024)).toFixed(1);
    throw new SpecError(
      `${file}: the spec is ${mb} MB, over the ${MAX_SPEC_CHARS / (1024 * 1024)} MB limit; a .patch.json holds prompts, not data — split it or use an induction block for generated tokens`,
    );
  }
}

const pathKey = (path: readonly PathSeg[]): string => path.map(String).join('\u0000');

type NodePos = { start: number; end: number; keyStart: number | undefined };

/** Finds where the nodes at `paths` are in the text, in one extra parse (only when reporting an error). */
function locateMany(info: TextInfo, paths: readonly (readonly PathSeg[])[]): Map<string, NodePos> {
  const wanted = new Set(paths.map(pathKey));
  // Cheap filters first: joining the path of each of a million array items is what would be slow.
  const depths = new Set(paths.map((p) => p.length));
  const lasts = new Set(paths.map((p) => String(p[p.length - 1])));
  const found = new Map<string, NodePos>();
  try {
    new JsoncParser(info.text, '', info, (v) => {
      if (!depths.has(v.path.length) || !lasts.has(String(v.path[v.path.length - 1]))) return;
      const key = pathKey(v.path);
      if (wanted.has(key) && !found.has(key)) found.set(key, { start: v.start, end: v.end, keyStart: v.keyStart });
    }).parse();
  } catch {
    // The text no longer parses (edited since): report without a position.
  }
  return found;
}

function locate(info: TextInfo, path: readonly PathSeg[]): NodePos | undefined {
  return locateMany(info, [path]).get(pathKey(path));
}

/** The node at `path`, or its nearest ancestor in the text (a default value has no node of its own). */
function locateNearest(info: TextInfo, path: readonly PathSeg[]): NodePos | undefined {
  for (let k = path.length; k >= 0; k--) {
    const node = locate(info, path.slice(0, k));
    if (node) return node;
  }
  return undefined;
}

/**
 * For a JSON string literal starting at `open` (its opening quote), the document offset of each
 * UTF-16 unit of the decoded string, plus one for its end; undefined when the literal has no
 * escapes (then offset + i is exact).
 */
function literalOffsets(text: string, open: number, base: number): number[] | undefined {
  let i = open + 1;
  while (i < text.length && text.charCodeAt(i) !== 34 && text.charCodeAt(i) !== 92) i++;
  if (text.charCodeAt(i) !== 92) return undefined;
  const offsets: number[] = [];
  for (let k = open + 1; k < i; k++) offsets.push(base + k);
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 34 || i >= text.length) break;
    offsets.push(base + i);
    i += c === 92 ? (text[i + 1] === 'u' ? 6 : 2) : 1;
  }
  offsets.push(base + i);
  return offsets;
}

// ---------------------------------------------------------------------------------------------
// Schema validation

let validators: { first: ValidateFunction; all: ValidateFunction } | undefined;

function getValidators(): { first: ValidateFunction; all: ValidateFunction } {
  if (!validators) {
    const make = (allErrors: boolean) => {
      const ajv = new Ajv({ allErrors, verbose: true, strictTypes: false });
      // VS Code's editor-only schema keywords: known, so strict mode still catches real typos.
      ajv.addVocabulary(['defaultSnippets', 'markdownDescription', 'enumDescriptions', 'markdownEnumDescriptions', 'allowComments', 'allowTrailingCommas']);
      return ajv.compile(schemaJson as object);
    };
    validators = { first: make(false), all: make(true) };
  }
  return validators;
}

/** Whether `value` has more than `limit` nodes (counted without recursion, stopping at the limit). */
function hasMoreNodes(value: unknown, limit: number): boolean {
  const stack: unknown[] = [value];
  let n = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (++n > limit) return true;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stack.push(x);
  }
  return false;
}

// Collecting every error is what lets the message be the most relevant one, but it costs seconds on
// a file with a million bad ids; above this size the first error found is reported.
const ALL_ERRORS_MAX_NODES = 100_000;

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function closest(word: string, allowed: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    // The distance is at least the difference in length: skipping those keeps a megabyte-long
    // misspelling from costing seconds of edit-distance work per allowed name.
    if (Math.abs(w.length - a.length) > limit) continue;
    const d = editDistance(w, a.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  return best !== undefined && bestD <= limit ? best : undefined;
}

function didYouMean(word: unknown, allowed: readonly string[]): string {
  const c = typeof word === 'string' ? closest(word, allowed) : undefined;
  return c ? `did you mean ${quote(c)}? (allowed: ${allowed.join(', ')})` : `use one of: ${allowed.join(', ')}`;
}

function pointerToPath(pointer: string, data: unknown): PathSeg[] {
  if (pointer === '') return [];
  const path: PathSeg[] = [];
  let node = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const seg: PathSeg = Array.isArray(node) && /^\d+$/.test(key) ? Number(key) : key;
    path.push(seg);
    node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return path;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${quote(v, 30)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v === 'number' ? 'the number' : ''} ${String(v)}`.trim();
}

const TYPE_HINTS: Record<string, string> = {
  clean: 'write the prompt as "text" (for token ids use clean_ids)',
  corrupted: 'write the prompt as "text" (for token ids use corrupted_ids)',
  clean_ids: 'write token ids as a list of integers, e.g. [50256, 464, 3290]',
  corrupted_ids: 'write token ids as a list of integers, e.g. [50256, 464, 3290]',
  answer: 'write the answer as text, e.g. " Alice" (or use answer_id for a token id)',
  wrong: 'write the wrong answer as text, e.g. " Bob" (or use wrong_id for a token id)',
  answer_id: 'write a token id, e.g. 14862 (or use answer for text)',
  wrong_id: 'write a token id, e.g. 5811 (or use wrong for text)',
  sweeps: 'write a list of sweep names, e.g. ["resid_pre", "attn_head_out_all_pos"]',
  pairs: 'write a list of pairs: [{"clean": "…", "corrupted": "…", "answer": "…", "wrong": "…"}]',
  induction: 'write an object: {"seed": 0, "corrupted": "AB"}',
  targets: 'write a list like [{"pos": 5, "token_id": 123}]',
  token_range: 'write [lo, hi], e.g. [100, 10000]',
  prepend_bos: 'write true or false',
};

const TYPE_NAMES: Record<string, string> = {
  string: 'a string in double quotes',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list [ … ]',
  object: 'an object { … }',
};

/** One direct (non-composite) ajv error as a message; `at` says where it points. */
function ajvMessage(err: ErrorObject, data: unknown): { path: PathSeg[]; useKey: boolean; message: string } {
  const path = pointerToPath(err.instancePath, data);
  const where = formatPath(path);
  const last = path[path.length - 1];
  const field = typeof last === 'string' ? last : typeof path[path.length - 2] === 'string' ? (path[path.length - 2] as string) : '';
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const allowed = Object.keys(((err.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      const what = path.length === 0 ? `top-level key ${quote(key)}` : `key ${quote(key)} in ${where}`;
      return { path: [...path, key], useKey: true, message: `unknown ${what}; ${didYouMean(key, allowed)}` };
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const noun =
        path[0] === 'sweeps' && path.length === 2 ? 'sweep' : where === 'metric' ? 'metric' : where === 'induction.corrupted' ? 'corruption pattern' : 'value';
      return { path, useKey: false, message: `unknown ${noun} ${typeof err.data === 'string' ? quote(err.data) : describeValue(err.data)} at ${where}; ${didYouMean(err.data, allowed)}` };
    }
    case 'type': {
      const want = String(p.type);
      const isInt = want === 'integer' && typeof err.data === 'number';
      const hint = TYPE_HINTS[field] ?? (isInt ? 'write a whole number' : `write ${TYPE_NAMES[want] ?? want}`);
      return { path, useKey: false, message: `${where} must be ${TYPE_NAMES[want] ?? want}, not ${describeValue(err.data)}; ${hint}` };
    }
    case 'required': {
      const missing = String(p.missingProperty);
      const example: Record<string, string> = {
        metric: `"metric": one of ${(schemaJson.properties.metric.enum as string[]).join(', ')}`,
        sweeps: '"sweeps": ["resid_pre"]',
        seed: '"seed": 0',
        corrupted: '"corrupted": "AB" (or BA, BB, BC)',
        pos: '"pos": 5',
        token_id: '"token_id": 123',
      };
      const owner = path.length === 0 ? 'the spec' : where;
      return { path, useKey: false, message: `${owner} is missing ${quote(missing)}; add ${example[missing] ?? `"${missing}": …`}` };
    }
    case 'dependencies': {
      const has = String(p.property);
      const missing = String(p.missingProperty);
      const form = has.endsWith('_ids') ? 'token-id prompts' : 'text prompts';
      return { path: [...path, has], useKey: true, message: `${where} has ${quote(has)} but no ${quote(missing)}; ${form} come in pairs — add ${quote(missing)} (the ${missing.startsWith('clean') ? 'clean' : 'corrupted'} prompt)` };
    }
    case 'minItems': {
      const what: Record<string, string> = {
        sweeps: 'list at least one sweep, e.g. ["resid_pre"]',
        pairs: 'add at least one pair {"clean": …, "corrupted": …}',
        targets: 'add a target {"pos": …, "token_id": …} or remove "targets"',
        token_range: 'write [lo, hi], e.g. [100, 10000]',
      };
      const min = Number(p.limit);
      return { path, useKey: false, message: `${where} ${min <= 1 ? 'is empty' : `needs ${min} items`}; ${what[field] ?? 'add the missing items'}` };
    }
    case 'maxItems':
      return { path, useKey: false, message: `${where} has too many items (at most ${String(p.limit)}); ${field === 'token_range' ? 'write [lo, hi]' : 'remove the extra items'}` };
    case 'uniqueItems': {
      const i = Math.min(Number(p.i), Number(p.j));
      const j = Math.max(Number(p.i), Number(p.j));
      const dup = Array.isArray(err.data) ? err.data[j] : undefined;
      return { path: [...path, j], useKey: false, message: `${where} lists ${typeof dup === 'string' ? quote(dup) : 'a value'} twice (${where}[${i}] and ${where}[${j}]); remove one` };
    }
    case 'minimum':
    case 'maximum': {
      const bound = `${err.keyword === 'minimum' ? '≥' : '≤'} ${String(p.limit)}`;
      const isId = field.endsWith('_id') || field.endsWith('_ids') || field === 'token_range';
      const hint = err.keyword === 'minimum' && isId ? 'token ids start at 0' : err.keyword === 'minimum' && field === 'pos' ? 'positions start at 0 (BOS included)' : `use a value ${bound}`;
      return { path, useKey: false, message: `${where} is ${String(err.data)}, but it must be ${bound}; ${hint}` };
    }
    case 'minLength':
      return { path, useKey: false, message: `${where} is an empty string; ${field === 'clean' || field === 'corrupted' ? 'write the prompt' : field === 'answer' || field === 'wrong' ? 'write one token of text, e.g. " Alice"' : 'write a value or remove the key'}` };
    default:
      return { path, useKey: false, message: `${where} ${err.message ?? 'is not valid'}` };
  }
}

const LATE = new Set(['required', 'dependencies']);
const COMPOSITE = /\/(oneOf|anyOf|allOf|not|if|then|else)(\/|$)/;
function isComposite(err: ErrorObject): boolean {
  return COMPOSITE.test(err.schemaPath) || ['oneOf', 'anyOf', 'allOf', 'not', 'if'].includes(err.keyword);
}

/**
 * The rules the schema states with oneOf/not/if (which give poor messages), stated again as code so
 * that each broken one gets its own message. Also the rules a schema cannot state (lo < hi).
 */
function checkRules(spec: PatchSpec, fail: (path: PathSeg[], useKey: boolean, message: string) => never): void {
  if (spec.pairs !== undefined && spec.induction !== undefined) {
    fail(['induction'], true, 'the spec has both "pairs" and "induction"; a spec uses one of them — remove the other');
  }
  if (spec.pairs === undefined && spec.induction === undefined) {
    fail([], false, 'the spec has no prompts; add "pairs": [{"clean": …, "corrupted": …, "answer": …, "wrong": …}] or an "induction" block');
  }
  const metric = spec.metric;
  if (spec.induction !== undefined) {
    if (!INDUCTION_METRICS.includes(metric)) {
      fail(['metric'], false, `metric ${quote(metric)} needs answer and wrong tokens, which an induction spec does not have; use answer_logprob (the demo's metric), answer_prob or kl_divergence`);
    }
    const range = spec.induction.token_range;
    if (range !== undefined && !(range[0] < range[1])) {
      fail(['induction', 'token_range'], false, `induction.token_range is [${range[0]}, ${range[1]}]; it must be [lo, hi] with lo < hi, e.g. [100, 10000]`);
    }
  }
  (spec.pairs ?? []).forEach((pair, i) => {
    const at = `pairs[${i}]`;
    const hasText = pair.clean !== undefined || pair.corrupted !== undefined;
    const hasIds = pair.clean_ids !== undefined || pair.corrupted_ids !== undefined;
    if (hasText && hasIds) fail(['pairs', i, 'clean_ids'], true, `${at} gives both text (clean, corrupted) and token ids (clean_ids, corrupted_ids); keep one form`);
    if (!hasText && !hasIds) fail(['pairs', i], false, `${at} has no prompts; give "clean" and "corrupted" (text) or "clean_ids" and "corrupted_ids" (token ids)`);
    if (pair.answer !== undefined && pair.answer_id !== undefined) fail(['pairs', i, 'answer_id'], true, `${at} gives both answer and answer_id; keep one`);
    if (pair.wrong !== undefined && pair.wrong_id !== undefined) fail(['pairs', i, 'wrong_id'], true, `${at} gives both wrong and wrong_id; keep one`);
    const hasAnswer = pair.answer !== undefined || pair.answer_id !== undefined;
    const hasWrong = pair.wrong !== undefined || pair.wrong_id !== undefined;
    if (hasAnswer && pair.targets !== undefined) {
      fail(['pairs', i, 'targets'], true, `${at} gives both an answer and targets; keep one (an answer is scored at the last token, targets at their positions)`);
    }
    if (LOGIT_DIFF_METRICS.includes(metric)) {
      if (!hasAnswer) fail(['pairs', i], false, `${at} has no answer; metric ${metric} needs "answer" (the clean prompt's next token, e.g. " Alice") and "wrong" (e.g. " Bob")`);
      if (!hasWrong) fail(['pairs', i], false, `${at} has no wrong answer; metric ${metric} needs "wrong" (the competing token, usually the corrupted prompt's answer, e.g. " Bob")`);
      if (pair.targets !== undefined) fail(['pairs', i, 'targets'], true, `${at}.targets: metric ${metric} does not read targets; remove them, or use answer_logprob or answer_prob`);
    }
    if (TARGET_METRICS.includes(metric) && !hasAnswer && pair.targets === undefined) {
      fail(['pairs', i], false, `${at} has no answer; metric ${metric} needs "answer" (scored at the last token, e.g. " Alice") or "targets": [{"pos": …, "token_id": …}]`);
    }
  });
}

/**
 * Checks a parsed value against the schema and the rules, throwing one SpecError for the most
 * relevant problem: the first (in document order) of the direct errors, else the broken rule.
 */
function validateValue(value: unknown, file: string, info: TextInfo | undefined): PatchSpec {
  const fail = (path: PathSeg[], useKey: boolean, message: string): never => {
    const node = info ? locate(info, path) : undefined;
    const start = node ? (useKey ? (node.keyStart ?? node.start) : node.start) : undefined;
    throw errorAt(file, info, start, node?.end, message);
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail([], false, `the spec must be a JSON object { … }, not ${describeValue(value)}; see the "PatchLens: New Patch File" template`);
  }
  const { first, all } = getValidators();
  let ok = first(value);
  let errors = first.errors ?? [];
  if (!ok && !hasMoreNodes(value, ALL_ERRORS_MAX_NODES)) {
    ok = all(value);
    errors = all.errors ?? [];
  }
  if (!ok) {
    // Capped: a file with thousands of bad ids needs one message, not a ranking of all of them.
    const direct = errors.filter((e) => !isComposite(e)).slice(0, 200);
    if (direct.length > 0) {
      const messages = direct.map((e) => ajvMessage(e, value));
      const where = info ? locateMany(info, messages.map((m) => m.path)) : new Map<string, NodePos>();
      const ranked = messages.map((m, k) => {
        const node = where.get(pathKey(m.path));
        return { m, late: LATE.has(direct[k]!.keyword) ? 1 : 0, start: node ? (m.useKey ? (node.keyStart ?? node.start) : node.start) : Infinity, k };
      });
      // Document order, so that fixing errors top to bottom works; a missing key points at its
      // object's start, before everything inside, so it comes after the rest (a misspelt key shows
      // up as both unknown and missing, and 'unknown key, did you mean' is the useful message).
      ranked.sort((a, b) => a.late - b.late || a.start - b.start || a.k - b.k);
      const best = ranked[0]!.m;
      fail(best.path, best.useKey, best.message);
    }
  }
  checkRules(value as PatchSpec, fail);
  if (!ok && errors.length > 0) {
    const e = errors[0]!;
    const path = pointerToPath(e.instancePath, value);
    fail(path, false, `${formatPath(path)} does not match the .patch.json schema (${e.message ?? e.keyword}); compare it with the template`);
  }
  return value as PatchSpec;
}

/** Parses and validates the text of a `.patch.json` file (comments and trailing commas allowed). */
export function parseSpecText(text: string, file: string): PatchSpec {
  return parseSpecAt(text, file, 0);
}

/** parseSpecText for text that starts at document offset `base` (a selection). */
export function parseSpecAt(text: string, file: string, base: number): PatchSpec {
  checkSize(text, file);
  const body = stripBom(text);
  // Offsets point into the text without its BOM, as an editor's document does.
  const info: TextInfo = { text: body, base };
  if (body.trim() === '') throw new SpecError(`${file}: the file is empty; start from the "PatchLens: New Patch File" template`);
  const value = new JsoncParser(body, file, info).parse();
  return validateValue(value, file, info);
}

// ---------------------------------------------------------------------------------------------
// Resolution

export interface PairSources {
  clean?: SourceText;
  corrupted?: SourceText;
}

export interface ResolveOptions {
  /** The spec's file (or a label such as 'selection'), for messages and the default name. */
  file: string;
  /** The spec's text, if it came from one: gives positions for errors and source ranges for tokens. */
  text?: string;
  /** Where `text` starts in the editor document (a selection); default 0. */
  textOffset?: number;
  /** Per pair, where its prompts came from when not from `text` (a two-line selection). */
  sources?: (PairSources | undefined)[];
}

// Far above the characters per token of any text (about 4 for English, at most 2 for most scripts).
const PROMPT_PROBE_CHARS_PER_TOKEN = 16;
const ANSWER_PROBE_CHARS = 256;

function defaultName(file: string): string {
  const base = basename(file);
  const lower = base.toLowerCase();
  const stem = lower.endsWith(SPEC_FILE_SUFFIX)
    ? base.slice(0, -SPEC_FILE_SUFFIX.length)
    : lower.endsWith('.json')
      ? base.slice(0, -'.json'.length)
      : base;
  return stem === '' ? 'patch' : stem;
}

/**
 * The induction demo's token batch. A, B and C are always drawn in that order (all rows of A, then
 * of B, then of C), so one seed gives the same clean tokens whatever the corruption pattern, and the
 * AB/BA/BB/BC specs of one seed are comparable.
 */
export function generateInduction(ind: InductionSpec, bos: number | undefined): ResolvedPair[] {
  const [lo, hi] = ind.token_range ?? INDUCTION_DEFAULTS.token_range;
  const length = ind.length ?? INDUCTION_DEFAULTS.length;
  const batch = ind.batch ?? INDUCTION_DEFAULTS.batch;
  const next = mulberry32(ind.seed);
  const span = hi - lo;
  // span < 2^32 and next() < 2^32: the product is below 2^64 but may round; floor of a correctly
  // rounded IEEE product is still identical everywhere, and span is small in practice (< 2^21).
  const draw = () => Array.from({ length: batch }, () => Array.from({ length }, () => lo + Math.floor((next() * span) / 4294967296)));
  const A = draw();
  const B = draw();
  const C = draw();
  const head = bos === undefined ? [] : [bos];
  const off = head.length;
  return A.map((a, r) => {
    const b = B[r]!;
    const c = C[r]!;
    const corrupted = { AB: [a, b], BA: [b, a], BB: [b, b], BC: [b, c] }[ind.corrupted];
    const clean = [...head, ...a, ...a];
    const targets: ResolvedTarget[] = [];
    // Second half: positions off+length … off+2·length−1; each but the last predicts the next clean token.
    for (let p = off + length; p <= off + 2 * length - 2; p++) targets.push({ pos: p, token: clean[p + 1]! });
    return { clean, corrupted: [...head, ...corrupted[0]!, ...corrupted[1]!], targets };
  });
}

function tokenList(tok: TextTokenizer, ids: readonly number[], from: number, max = 8): string {
  const shown = ids.slice(from, from + max).map((id) => quote(tok.tokenString(id), 20));
  return `[${from > 0 ? '… ' : ''}${shown.join(' ')}${from + max < ids.length ? ' …' : ''}]`;
}

interface Located extends NodePos {
  value: unknown;
}

/** Positions of the pairs' members in the spec text (one parse), for errors and source ranges. */
function pairNodes(info: TextInfo): Map<string, Located> {
  const nodes = new Map<string, Located>();
  try {
    new JsoncParser(info.text, '', info, (v) => {
      if (v.path.length === 3 && v.path[0] === 'pairs') nodes.set(`${String(v.path[1])}/${String(v.path[2])}`, { start: v.start, end: v.end, keyStart: v.keyStart, value: v.value });
    }).parse();
  } catch {
    // Text edited since the spec was parsed: no positions.
  }
  return nodes;
}

/**
 * Turns a validated spec into token ids for `tok` and `cfg`: BOS prepended to text prompts (ids are
 * taken as given), answers checked to be single tokens, lengths and ids checked against the model.
 */
export function resolveSpec(spec: PatchSpec, tok: TextTokenizer, cfg: ModelConfig, opts: ResolveOptions): ResolvedSpec {
  const file = opts.file;
  const info: TextInfo | undefined = opts.text === undefined ? undefined : { text: stripBom(opts.text), base: opts.textOffset ?? 0 };
  validateValue(spec, file, info);
  const nodes = info ? pairNodes(info) : new Map<string, Located>();
  const fail = (path: PathSeg[], message: string, useKey = false): never => {
    const node = path.length === 3 && path[0] === 'pairs' ? nodes.get(`${path[1]}/${path[2]}`) : info ? locateNearest(info, path) : undefined;
    throw errorAt(file, info, node ? (useKey ? (node.keyStart ?? node.start) : node.start) : undefined, node?.end, message);
  };
  const prependBos = spec.prepend_bos ?? true;
  const vocab = cfg.dVocab;
  const bos = cfg.bosTokenId;

  const checkLength = (path: PathSeg[], n: number) => {
    if (n > cfg.nCtx) {
      fail(path, `${formatPath(path)} is ${n} tokens${prependBos ? ' (with BOS)' : ''}, but the model's context is ${cfg.nCtx} (n_ctx); shorten the prompt`);
    }
  };
  const checkId = (path: PathSeg[], id: number, label = formatPath(path)) => {
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) {
      fail(path, `${label} is token id ${id}, outside the model's vocabulary [0, ${vocab}); use ids below ${vocab}`);
    }
  };

  let pairs: ResolvedPair[];
  if (spec.induction !== undefined) {
    const ind = spec.induction;
    const [lo, hi] = ind.token_range ?? INDUCTION_DEFAULTS.token_range;
    if (hi > vocab) fail(['induction', 'token_range'], `induction.token_range [${lo}, ${hi}] goes past the model's vocabulary of ${vocab} tokens; use hi ≤ ${vocab}`);
    const length = ind.length ?? INDUCTION_DEFAULTS.length;
    const total = 2 * length + (prependBos ? 1 : 0);
    if (total > cfg.nCtx) fail(['induction', 'length'], `induction.length ${length} gives ${total} tokens, but the model's context is ${cfg.nCtx} (n_ctx); use length ≤ ${Math.floor((cfg.nCtx - (prependBos ? 1 : 0)) / 2)}`);
    pairs = generateInduction(ind, prependBos ? bos : undefined);
  } else {
    pairs = (spec.pairs ?? []).map((pair, i) => resolvePair(pair, i));
  }
  return { name: spec.name ?? defaultName(file), model: spec.model, metric: spec.metric, sweeps: [...spec.sweeps], prependBos, pairs };

  function sourceFor(i: number, which: 'clean' | 'corrupted', text: string): SourceText | undefined {
    const given = opts.sources?.[i]?.[which];
    if (given) return given.text === text ? given : undefined;
    const node = nodes.get(`${i}/${which}`);
    if (!info || !node || node.value !== text) return undefined;
    const src: SourceText = { text, offset: info.base + node.start + 1 };
    const offsets = literalOffsets(info.text, node.start, info.base);
    if (offsets) src.offsets = offsets;
    return src;
  }

  function textPrompt(i: number, which: 'clean' | 'corrupted', text: string) {
    // BPE time grows with the square of a word's length, so a runaway prompt (a megabyte pasted by
    // mistake) is measured on its start first: if that alone is past the context, the rest is moot.
    const probe = PROMPT_PROBE_CHARS_PER_TOKEN * (cfg.nCtx + 1);
    if (text.length > probe) {
      const head = tok.encode(text.slice(0, probe)).ids.length + (prependBos ? 1 : 0);
      if (head > cfg.nCtx) {
        fail(['pairs', i, which], `pairs[${i}].${which} is ${text.length} characters, and its first ${probe} alone are ${head} tokens${prependBos ? ' (with BOS)' : ''}, but the model's context is ${cfg.nCtx} (n_ctx); shorten the prompt`);
      }
    }
    const enc = tok.encode(text);
    if (enc.ids.length === 0 && !prependBos) fail(['pairs', i, which], `pairs[${i}].${which} gives no tokens; write some text, or set prepend_bos to true`);
    const source = sourceFor(i, which, text);
    const ranges = enc.ranges.map((r) => (source ? toDocumentRange(source, r) : ([r[0], r[1]] as [number, number])));
    return {
      ids: prependBos ? [bos, ...enc.ids] : enc.ids,
      ranges: prependBos ? [null, ...ranges] : ranges,
      source,
    };
  }

  function answerToken(i: number, pair: PairSpec, which: 'answer' | 'wrong'): number | undefined {
    const text = pair[which];
    const id = pair[`${which}_id`];
    if (id !== undefined) {
      checkId(['pairs', i, `${which}_id`], id);
      return id;
    }
    if (text === undefined) return undefined;
    // Judged on its start when long, for the same reason as prompts: no real token is that long.
    const long = text.length > ANSWER_PROBE_CHARS;
    let ids = tok.encode(long ? text.slice(0, ANSWER_PROBE_CHARS) : text).ids;
    let judgedOnStart = long;
    if (judgedOnStart && ids.length <= 1) {
      ids = tok.encode(text).ids;
      judgedOnStart = false;
    }
    if (ids.length === 1) return ids[0];
    const spaced = !/^\s/.test(text) && !long ? tok.encode(` ${text}`).ids : [];
    const hint =
      spaced.length === 1
        ? `add a leading space: ${quote(` ${text}`)} is one token (the model sees the space before a word as part of it)`
        : `use a single word, usually with a leading space (e.g. " Alice"), or give ${which}_id`;
    const count = judgedOnStart ? `${text.length} characters (its first ${ANSWER_PROBE_CHARS} alone are ${ids.length} tokens)` : `${ids.length} tokens`;
    fail(['pairs', i, which], `pairs[${i}].${which} ${quote(text)} is ${count} ${tokenList(tok, ids, 0)}, but an answer must be exactly one token; ${hint}`);
  }

  function resolvePair(pair: PairSpec, i: number): ResolvedPair {
    const out: ResolvedPair = { clean: [], corrupted: [] };
    if (pair.clean !== undefined && pair.corrupted !== undefined) {
      const c = textPrompt(i, 'clean', pair.clean);
      const k = textPrompt(i, 'corrupted', pair.corrupted);
      out.clean = c.ids;
      out.corrupted = k.ids;
      out.cleanRanges = c.ranges;
      out.corruptedRanges = k.ranges;
      if (c.source) out.cleanSource = c.source;
      if (k.source) out.corruptedSource = k.source;
    } else {
      const cleanIds = pair.clean_ids ?? [];
      const corruptedIds = pair.corrupted_ids ?? [];
      cleanIds.forEach((id, j) => checkId(['pairs', i, 'clean_ids', j], id, `pairs[${i}].clean_ids[${j}] (position ${j})`));
      corruptedIds.forEach((id, j) => checkId(['pairs', i, 'corrupted_ids', j], id, `pairs[${i}].corrupted_ids[${j}] (position ${j})`));
      out.clean = [...cleanIds];
      out.corrupted = [...corruptedIds];
    }
    const textForm = pair.clean !== undefined;
    if (out.clean.length !== out.corrupted.length) {
      let d = 0;
      while (d < out.clean.length && d < out.corrupted.length && out.clean[d] === out.corrupted[d]) d++;
      const from = Math.max(0, d - 2);
      fail(
        ['pairs', i, textForm ? 'corrupted' : 'corrupted_ids'],
        `pairs[${i}]: clean has ${out.clean.length} tokens, corrupted has ${out.corrupted.length}; position-wise patching needs the clean and corrupted prompts to have the same number of tokens — make them tokenize to the same length (e.g. swap names rather than remove them); from token ${from}: clean ${tokenList(tok, out.clean, from)} vs corrupted ${tokenList(tok, out.corrupted, from)}`,
      );
    }
    checkLength(['pairs', i, textForm ? 'clean' : 'clean_ids'], out.clean.length);
    const answer = answerToken(i, pair, 'answer');
    const wrong = answerToken(i, pair, 'wrong');
    if (answer !== undefined) out.answer = answer;
    if (wrong !== undefined) out.wrong = wrong;
    if (pair.targets !== undefined) {
      const n = out.clean.length;
      out.targets = pair.targets.map((t, j) => {
        if (t.pos >= n) {
          fail(['pairs', i, 'targets'], `pairs[${i}].targets[${j}].pos is ${t.pos}, but the sequence has ${n} tokens${prependBos && textForm ? ' (BOS included)' : ''}, so positions go 0…${n - 1}; the logits at pos predict the token after it`);
        }
        checkId(['pairs', i, 'targets'], t.token_id, `pairs[${i}].targets[${j}].token_id`);
        return { pos: t.pos, token: t.token_id };
      });
    }
    return out;
  }
}
