/**
 * JSON with comments and trailing commas (VS Code's jsonc mode), read with Microsoft's jsonc-parser
 * (`visit`) into plain values and the offsets of every node, so that errors and token ranges point
 * into the text.
 *
 * jsonc-parser finds the structure and the first error; the message for that error is phrased here,
 * from what the parse expected at that point and the text there (`expected ',' or '}' after the value
 * of 'metric'`, `strings need double quotes, not single quotes`), because its error codes
 * (`CommaExpected`, `InvalidSymbol`) say neither what is wrong in words nor how to fix it. What
 * jsonc-parser accepts and JSON does not is refused here: numbers that run into letters or digits
 * (`01`, `12abc`), numbers out of range, duplicate keys, and nesting deeper than MAX_DEPTH (which also
 * bounds jsonc-parser's recursion).
 */
import { type ParseErrorCode, printParseErrorCode, visit } from 'jsonc-parser';
import { errorAt, formatPath, lineColumn, type PathSeg, quote, type SpecError, type TextInfo } from './specError';

export interface NodeVisit {
  /** Live during the parse; copy it to keep it. */
  path: readonly PathSeg[];
  start: number;
  end: number;
  /** Where the property name starts, for object members. */
  keyStart: number | undefined;
  value: unknown;
}

export type NodePos = { start: number; end: number; keyStart: number | undefined };

// A spec is a few levels deep; a bound keeps a malicious or broken file from exhausting the stack.
const MAX_DEPTH = 128;

const WORD = /[A-Za-z_$][\w$]*/y;

// Errors of a token that jsonc-parser reports when it reads the token, before the parse has decided
// whether the token may stand there: they count only once the token is taken as a key or a value.
// (By name: the codes are a const enum, which isolated modules cannot read.)
const TOKEN_ERRORS = new Set(['InvalidUnicode', 'InvalidEscapeCharacter', 'UnexpectedEndOfNumber', 'UnexpectedEndOfString', 'InvalidCharacter']);

/** What the parse expects next: a value (top level, after ':'), a list item, a key, the ':', or what follows a value. */
type Expect = 'value' | 'item' | 'key' | 'colon' | 'after';

interface Container {
  readonly value: Record<string, unknown> | unknown[];
  readonly start: number;
  readonly keyStart: number | undefined;
  readonly seen?: Map<string, number>;
  /** The member being read (objects): its key and where that starts. */
  key?: string;
  memberKeyStart?: number;
}

class JsoncReader {
  private readonly stack: Container[] = [];
  private readonly path: PathSeg[] = [];
  private expect: Expect = 'value';
  private result: unknown;
  private tokenError: number | undefined;

  constructor(
    private readonly text: string,
    private readonly file: string,
    private readonly info: TextInfo,
    private readonly onNode?: (v: NodeVisit) => void,
  ) {}

  read(): unknown {
    visit(
      this.text,
      {
        onObjectBegin: (offset) => this.begin(offset, {}),
        onArrayBegin: (offset) => this.begin(offset, []),
        onObjectEnd: (offset) => this.end(offset, '}'),
        onArrayEnd: (offset) => this.end(offset, ']'),
        onObjectProperty: (name, offset, length) => this.property(name, offset, length),
        onLiteralValue: (value: unknown, offset, length) => this.literal(value, offset, length),
        onSeparator: (sep) => {
          if (sep === ':') this.expect = 'value';
          else this.expect = Array.isArray(this.top()?.value) ? 'item' : 'key';
        },
        onError: (code, offset) => this.error(code, offset),
      },
      { allowTrailingComma: true, disallowComments: false },
    );
    if (this.tokenError !== undefined) throw this.unexpected(this.tokenError);
    return this.result;
  }

  private top(): Container | undefined {
    return this.stack[this.stack.length - 1];
  }

  private fail(at: number, reason: string, hint: string): SpecError {
    return errorAt(this.file, this.info, at, at + 1, `not valid JSON: ${reason}; ${hint}`);
  }

  private describe(at: number): string {
    if (at >= this.text.length) return 'end of file';
    return `character ${quote(String.fromCodePoint(this.text.codePointAt(at)!))}`;
  }

  private error(code: ParseErrorCode, offset: number): void {
    const name = printParseErrorCode(code);
    if (TOKEN_ERRORS.has(name)) {
      this.tokenError ??= offset;
      return;
    }
    this.tokenError = undefined;
    if (name === 'UnexpectedEndOfComment') throw this.fail(offset, 'the /* comment is not closed', 'add */ where the comment ends');
    throw this.unexpected(offset);
  }

  /** A value starts: its place in the path, and its key's start when it is an object member. */
  private valueStarts(): number | undefined {
    const parent = this.top();
    if (parent === undefined) return undefined;
    if (Array.isArray(parent.value)) {
      this.path.push(parent.value.length);
      return undefined;
    }
    return parent.memberKeyStart;
  }

  private valueEnds(value: unknown, start: number, end: number, keyStart: number | undefined): void {
    this.onNode?.({ path: this.path, start, end, keyStart, value });
    const parent = this.top();
    if (parent === undefined) this.result = value;
    else if (Array.isArray(parent.value)) parent.value.push(value);
    // defineProperty, not assignment: a key named __proto__ must stay plain data.
    else Object.defineProperty(parent.value, parent.key!, { value, enumerable: true, writable: true, configurable: true });
    if (parent !== undefined) this.path.pop();
    this.expect = 'after';
  }

  private begin(offset: number, value: Record<string, unknown> | unknown[]): void {
    if (this.stack.length >= MAX_DEPTH) throw this.fail(offset, `nested more than ${MAX_DEPTH} levels deep`, 'a spec needs only a few levels; check for runaway brackets');
    const keyStart = this.valueStarts();
    this.stack.push(Array.isArray(value) ? { value, start: offset, keyStart } : { value, start: offset, keyStart, seen: new Map() });
    this.expect = Array.isArray(value) ? 'item' : 'key';
  }

  private end(offset: number, close: '}' | ']'): void {
    // jsonc-parser ends a container at the end of the file too, before it reports the missing bracket.
    if (this.text[offset] !== close) throw this.unexpected(offset);
    const c = this.stack.pop()!;
    this.valueEnds(c.value, c.start, offset + 1, c.keyStart);
  }

  private property(name: string, offset: number, length: number): void {
    if (this.tokenError === offset) throw this.stringError(offset);
    const obj = this.top()!;
    const first = obj.seen!.get(name);
    if (first !== undefined) {
      const { line } = lineColumn(this.text, first);
      throw errorAt(
        this.file,
        this.info,
        offset,
        offset + length,
        `duplicate key ${quote(name)} ${this.path.length === 0 ? 'at the top level' : `in ${formatPath(this.path)}`} (first on line ${line}); remove one of them`,
      );
    }
    obj.seen!.set(name, offset);
    obj.key = name;
    obj.memberKeyStart = offset;
    this.path.push(name);
    this.expect = 'colon';
  }

  private literal(value: unknown, offset: number, length: number): void {
    if (this.tokenError === offset) {
      this.tokenError = undefined;
      throw this.text[offset] === '"' ? this.stringError(offset) : this.numberError(offset);
    }
    // jsonc-parser's number token is well formed; JSON also wants it not to run into what follows ('01', '1x').
    if (typeof value === 'number' && (!Number.isFinite(value) || /[\w.]/.test(this.text[offset + length] ?? ''))) {
      const wrong = this.numberError(offset);
      if (wrong) throw wrong;
    }
    const keyStart = this.valueStarts();
    this.valueEnds(value, offset, offset + length, keyStart);
  }

  /** The error at `at`, where the parse expected `this.expect`, phrased as what is wrong there and how to fix it. */
  private unexpected(at: number): SpecError {
    const t = this.text;
    const c = t[at];
    const container = this.top();
    switch (this.expect) {
      case 'item':
        if (c === undefined) return this.fail(at, 'unexpected end of file inside a list', 'add the closing ]');
        return this.valueError(at);
      case 'value':
        return this.valueError(at);
      case 'key':
        if (c === undefined) return this.fail(at, 'unexpected end of file inside an object', 'add the closing }');
        if (c === "'") return this.fail(at, 'property names need double quotes, not single quotes', 'write "name": …');
        if (/[A-Za-z_$]/.test(c)) return this.fail(at, 'property names need double quotes', 'write "name": … rather than name: …');
        return this.fail(at, `expected a property name in double quotes or '}', found ${this.describe(at)}`, 'check for a stray comma or a missing quote');
      case 'colon':
        return this.fail(at, `expected ':' after the property name ${quote(container!.key!)}, found ${this.describe(at)}`, 'write "name": value');
      case 'after':
        if (container === undefined)
          return this.fail(at, `unexpected ${this.describe(at)} after the end of the JSON value`, 'a spec is one JSON object; remove what follows its closing }');
        if (Array.isArray(container.value)) {
          if (c === undefined) return this.fail(at, 'unexpected end of file inside a list', 'add the closing ]');
          return this.fail(at, `expected ',' or ']' in a list, found ${this.describe(at)}`, 'a comma is probably missing between two items');
        }
        if (c === undefined) return this.fail(at, 'unexpected end of file inside an object', 'add the closing }');
        return this.fail(at, `expected ',' or '}' after the value of ${quote(container.key!)}, found ${this.describe(at)}`, 'a comma is probably missing between two properties');
    }
  }

  /** Where a value should start at `at` but none can. */
  private valueError(at: number): SpecError {
    const t = this.text;
    if (at >= t.length) return this.fail(at, 'unexpected end of file', 'a bracket, brace or quote is not closed, or a value is missing');
    const c = t[at]!;
    if (c === '"') return this.stringError(at);
    if (c === '-' || (c >= '0' && c <= '9')) return this.numberError(at) ?? this.fail(at, `unexpected ${this.describe(at)}`, 'check the punctuation just before it');
    if (/[A-Za-z_$]/.test(c)) {
      WORD.lastIndex = at;
      const w = WORD.exec(t)![0];
      if (w === 'true' || w === 'false' || w === 'null') {
        // jsonc-parser reads `true-1` as one unknown word; it is `true`, then a character that cannot follow a value.
        this.expect = 'after';
        return this.unexpected(at + w.length);
      }
      return this.fail(at, `unexpected word ${quote(w)}`, 'text must be in double quotes; JSON values are numbers, "strings", true, false, null, lists and objects');
    }
    if (c === "'") return this.fail(at, 'strings need double quotes, not single quotes', 'write "text" instead of \'text\'');
    if (c === ',' || c === ']' || c === '}' || c === ':')
      return this.fail(at, `unexpected ${quote(c)} where a value should be`, 'a value is missing, or there is one comma too many');
    return this.fail(at, `unexpected ${this.describe(at)}`, 'check the punctuation just before it');
  }

  /** What is wrong with the string literal whose opening quote is at `open`. */
  private stringError(open: number): SpecError {
    const t = this.text;
    for (let i = open + 1; ; i++) {
      if (i >= t.length) return this.fail(open, 'the string is not closed', 'add the closing "');
      const c = t.charCodeAt(i);
      if (c === 34) return this.fail(open, 'the string is not valid', 'check its escapes');
      if (c === 92) {
        const e = t[i + 1];
        if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(t.slice(i + 2, i + 6))) i += 5;
        else return this.fail(i, `invalid escape ${quote(t.slice(i, i + 2))} in a string`, 'write a backslash as \\\\ (JSON escapes are \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
      } else if (c < 0x20) {
        if (c === 10 || c === 13) return this.fail(i, 'line break inside a string', 'JSON strings cannot span lines; write the line break as \\n');
        return this.fail(i, `control character U+${c.toString(16).padStart(4, '0')} inside a string`, 'write it as a \\u escape');
      }
    }
  }

  /** What is wrong with the number that starts at `start`, or undefined when it is a valid JSON number. */
  private numberError(start: number): SpecError | undefined {
    const t = this.text;
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
      return this.fail(start, `invalid number ${quote(bad || t[start]!)}`, 'JSON numbers look like 12, -3, 0.5 or 1e-3 (no leading zeros, no trailing dot)');
    }
    if (!Number.isFinite(Number(t.slice(start, i)))) return this.fail(start, `number ${quote(t.slice(start, i))} is out of range`, 'use a smaller number');
    return undefined;
  }
}

/**
 * Parses JSON that may hold // and /* *\/ comments and trailing commas. Syntax errors throw a
 * SpecError `FILE:LINE:COL: not valid JSON: …`. `base` is where `text` starts in the editor document.
 */
export function parseJsonc(text: string, file: string, base = 0): unknown {
  return new JsoncReader(text, file, { text, base }).read();
}

/** parseJsonc for text already stripped of its BOM, calling `onNode` for every node (children first). */
export function parseJsoncNodes(info: TextInfo, file: string, onNode?: (v: NodeVisit) => void): unknown {
  return new JsoncReader(info.text, file, info, onNode).read();
}

export const pathKey = (path: readonly PathSeg[]): string => path.map(String).join('\u0000');

/** Calls `onNode` for the nodes of a text that parsed before; stops quietly where it no longer parses (edited since). */
export function scanNodes(info: TextInfo, onNode: (v: NodeVisit) => void): void {
  try {
    parseJsoncNodes(info, '', onNode);
  } catch {
    // The text no longer parses: the nodes before the error were seen, the rest have no position.
  }
}

/** Finds where the nodes at `paths` are in the text, in one extra parse (only when reporting an error). */
export function locateMany(info: TextInfo, paths: readonly (readonly PathSeg[])[]): Map<string, NodePos> {
  const wanted = new Set(paths.map(pathKey));
  // Cheap filters first: joining the path of each of a million array items is what would be slow.
  const depths = new Set(paths.map((p) => p.length));
  const lasts = new Set(paths.map((p) => String(p[p.length - 1])));
  const found = new Map<string, NodePos>();
  scanNodes(info, (v) => {
    if (!depths.has(v.path.length) || !lasts.has(String(v.path[v.path.length - 1]))) return;
    const key = pathKey(v.path);
    if (wanted.has(key) && !found.has(key)) found.set(key, { start: v.start, end: v.end, keyStart: v.keyStart });
  });
  return found;
}

export function locate(info: TextInfo, path: readonly PathSeg[]): NodePos | undefined {
  return locateMany(info, [path]).get(pathKey(path));
}

/** The node at `path`, or its nearest ancestor in the text (a default value has no node of its own). */
export function locateNearest(info: TextInfo, path: readonly PathSeg[]): NodePos | undefined {
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
export function literalOffsets(text: string, open: number, base: number): number[] | undefined {
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
