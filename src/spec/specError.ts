/**
 * Errors in a `.patch.json` spec and where they are. Every error a user can cause is a one-line
 * SpecError (a UserError) naming the file, the line and column when the text is known, the JSON path
 * (`pairs[1].answer`), and how to fix it. Shared by the parser, the schema check and the engine's
 * resolution against a tokenizer.
 */
import { UserError } from '../common/userError';

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
  /** The JSON path of the value the message is about, when the check that failed knows it. */
  path?: readonly PathSeg[];

  constructor(
    message: string,
    readonly location?: SpecLocation,
  ) {
    super(message);
  }
}

export type PathSeg = string | number;

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
export function quote(s: string, max = 60): string {
  // JSON.stringify leaves U+2028/2029 and NEL raw, and editors and notifications break lines on them.
  const body = JSON.stringify(s)
    .slice(1, -1)
    .replace(/\\"/g, '"')
    .replace(/'/g, "\\'")
    .replace(/[\u2028\u2029\u0085]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `'${body.length > max ? `${body.slice(0, max - 1)}…` : body}'`;
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
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
export interface TextInfo {
  text: string;
  base: number;
}

export function errorAt(file: string, info: TextInfo | undefined, start: number | undefined, end: number | undefined, message: string): SpecError {
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

/** A file's text as an editor's document holds it: without the byte-order mark. */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}
