/**
 * A selection in any editor as a patch request: either a JSON object in the `.patch.json` shape, or
 * two prompts (clean, then corrupted) as two lines or two paragraphs. Each prompt keeps its document
 * position, so a token maps back to the characters it came from.
 */
import { MAX_SPEC_CHARS, type PatchSpec, type SourceText } from '../protocol/spec';
import { parseSpecAt } from './parseSpec';
import { SpecError } from './specError';

export interface SelectionPrompts {
  clean: SourceText;
  corrupted: SourceText;
}

/** A JSON selection: the spec, and the selection text and offset (pass them to resolveSpec as text/textOffset). */
export interface SelectionSpec {
  spec: PatchSpec;
  text: string;
  offset: number;
}

const FORMS =
  'select two prompts — the clean one, then the corrupted one — as two lines, or as two paragraphs separated by a blank line; or select a JSON object in the .patch.json shape';

interface Line {
  start: number;
  end: number;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) {
      lines.push({ start, end: i });
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
    }
  }
  lines.push({ start, end: text.length });
  return lines;
}

const isBlank = (text: string, l: Line): boolean => /^\s*$/.test(text.slice(l.start, l.end));

/**
 * The text from `start` to `end`, trimmed, with CRLF and lone CR line ends as LF (the same prompt
 * gives the same tokens on every platform); `offsets` maps back when a line end was rewritten.
 */
function promptSource(text: string, start: number, end: number, base: number): SourceText {
  while (start < end && /\s/.test(text[start]!)) start++;
  while (end > start && /\s/.test(text[end - 1]!)) end--;
  const raw = text.slice(start, end);
  if (!raw.includes('\r')) return { text: raw, offset: base + start };
  let out = '';
  const offsets: number[] = [];
  for (let i = start; i < end; i++) {
    offsets.push(base + i);
    if (text[i] === '\r') {
      out += '\n';
      if (text[i + 1] === '\n') i++;
    } else out += text[i];
  }
  offsets.push(base + end);
  return { text: out, offset: base + start, offsets };
}

/**
 * Reads a selection. `selectionOffset` is where the selection starts in the document; the returned
 * offsets are document offsets. Throws a one-line UserError (a SpecError) when the selection is
 * neither form.
 */
export function parseSelection(text: string, selectionOffset: number): SelectionPrompts | SelectionSpec {
  if (text.length > MAX_SPEC_CHARS) {
    throw new SpecError(`selection: ${(text.length / (1024 * 1024)).toFixed(1)} MB selected; ${FORMS}`);
  }
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const bodyOffset = selectionOffset + (text.length - body.length);
  if (body.trimStart().startsWith('{')) {
    // Prompts rarely start with '{'; a spec always does.
    return { spec: parseSpecAt(body, 'selection', bodyOffset), text: body, offset: bodyOffset };
  }
  const lines = splitLines(body);
  const paragraphs: Line[][] = [];
  let current: Line[] | undefined;
  for (const l of lines) {
    if (isBlank(body, l)) current = undefined;
    else {
      if (!current) paragraphs.push((current = []));
      current.push(l);
    }
  }
  let parts: Line[];
  if (paragraphs.length === 2) {
    parts = paragraphs.map((p) => ({ start: p[0]!.start, end: p[p.length - 1]!.end }));
  } else if (paragraphs.length === 1 && paragraphs[0]!.length === 2) {
    parts = paragraphs[0]!;
  } else {
    const got =
      paragraphs.length === 0
        ? 'the selection is empty'
        : paragraphs.length === 1
          ? paragraphs[0]!.length === 1
            ? 'only one line is selected'
            : `${paragraphs[0]!.length} lines are selected with no blank line between them`
          : `${paragraphs.length} paragraphs are selected`;
    throw new SpecError(`selection: ${got}; ${FORMS}`);
  }
  return {
    clean: promptSource(body, parts[0]!.start, parts[0]!.end, bodyOffset),
    corrupted: promptSource(body, parts[1]!.start, parts[1]!.end, bodyOffset),
  };
}
