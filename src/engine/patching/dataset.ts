/**
 * A spec's `dataset`: prompt pairs from a JSONL file (one pair object per line, the keys of `pairs`) or
 * a CSV file (a header naming the columns). Each pair keeps the line it came from, so a problem with pair
 * 212 is reported at `ioi.jsonl:213`. The CSV reader is written here (RFC 4180: quoted fields with
 * doubled quotes and line breaks) because that is all a dataset needs, in about forty lines, where a
 * package would add a dependency to the extension for it.
 */
import { extname } from 'node:path';
import { MAX_DATASET_BYTES, type PairSpec } from '../../protocol/spec';
import { type FileRole, readTextFile } from '../../common/fileRead';
import { UserError } from '../../common/userError';
import { quote } from '../../spec/specError';

export interface Dataset {
  readonly pairs: PairSpec[];
  /** The 1-based line each pair starts on. */
  readonly lines: number[];
}

/** The columns a CSV dataset may have, besides pos_LABEL. */
const CSV_TEXT = ['clean', 'corrupted', 'answer', 'wrong'] as const;
const CSV_IDS = ['answer_id', 'wrong_id'] as const;

const DATASET_FILE: FileRole = {
  noun: 'dataset',
  maxBytes: MAX_DATASET_BYTES,
  fix: 'check "dataset" (a .jsonl or .csv file, relative to the spec file), or split a larger dataset into several specs',
};

export function readDataset(path: string): Dataset {
  const ext = extname(path).toLowerCase();
  if (ext !== '.jsonl' && ext !== '.ndjson' && ext !== '.csv') {
    throw new UserError(`the dataset ${path} is neither .jsonl nor .csv; write one pair object per line in a .jsonl file, or a .csv file with a header row`);
  }
  const text = readTextFile(path, DATASET_FILE).replace(/^\uFEFF/, '');
  const data = ext === '.csv' ? csvPairs(path, text) : jsonlPairs(path, text);
  if (data.pairs.length === 0) throw new UserError(`the dataset ${path} has no pairs; add one pair per ${ext === '.csv' ? 'row after the header' : 'line'}`);
  return data;
}

function jsonlPairs(path: string, text: string): Dataset {
  const pairs: PairSpec[] = [];
  const lines: number[] = [];
  text.split(/\r?\n/).forEach((line, k) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new UserError(
        `${path}:${k + 1}: not valid JSON (${(e as Error).message}); write one pair object per line, e.g. {"clean": "…", "corrupted": "…", "answer": " Mary", "wrong": " John"}`,
      );
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new UserError(`${path}:${k + 1}: a line must be one pair object {"clean": …, "corrupted": …, …}, not ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
    }
    pairs.push(value as PairSpec);
    lines.push(k + 1);
  });
  return { pairs, lines };
}

/** RFC 4180 records, each with the line it starts on. */
export function parseCsv(text: string): { fields: string[]; line: number }[] {
  const records: { fields: string[]; line: number }[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  let i = 0;
  const endField = () => {
    fields.push(field);
    field = '';
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else {
        if (c === '\n') line++;
        field += c;
      }
      i++;
      continue;
    }
    if (c === '"' && field === '') quoted = true;
    else if (c === ',') endField();
    else if (c === '\n' || c === '\r') {
      endField();
      if (!(fields.length === 1 && fields[0] === '')) records.push({ fields, line: start });
      fields = [];
      if (c === '\r' && text[i + 1] === '\n') i++;
      line++;
      start = line;
    } else field += c;
    i++;
  }
  if (quoted) throw new UserError(`line ${start}: a quoted field is not closed; end it with "`);
  if (field !== '' || fields.length > 0) {
    endField();
    records.push({ fields, line: start });
  }
  return records;
}

function csvPairs(path: string, text: string): Dataset {
  let records: ReturnType<typeof parseCsv>;
  try {
    records = parseCsv(text);
  } catch (e) {
    throw new UserError(`${path}: ${(e as Error).message}`);
  }
  const [header, ...rows] = records;
  if (!header) return { pairs: [], lines: [] };
  const columns = header.fields.map((h) => h.trim());
  columns.forEach((name) => {
    if (!(CSV_TEXT as readonly string[]).includes(name) && !(CSV_IDS as readonly string[]).includes(name) && !/^pos_./.test(name)) {
      throw new UserError(
        `${path}:${header.line}: unknown column ${quote(name)}; the columns are ${[...CSV_TEXT, ...CSV_IDS].join(', ')} and pos_LABEL (a labelled position, e.g. pos_IO)`,
      );
    }
  });
  const pairs: PairSpec[] = [];
  const lines: number[] = [];
  for (const row of rows) {
    if (row.fields.length !== columns.length) {
      throw new UserError(`${path}:${row.line}: ${row.fields.length} fields where the header has ${columns.length}; quote a field that holds a comma ("a, b")`);
    }
    const pair: Record<string, unknown> = {};
    const positions: Record<string, number> = {};
    row.fields.forEach((value, k) => {
      const name = columns[k]!;
      if (value === '') return;
      const int = () => {
        if (!/^\d+$/.test(value.trim())) throw new UserError(`${path}:${row.line}: column ${name} is ${quote(value)}; write a whole number ≥ 0`);
        return Number(value.trim());
      };
      if (name.startsWith('pos_')) positions[name.slice(4)] = int();
      else pair[name] = (CSV_IDS as readonly string[]).includes(name) ? int() : value;
    });
    if (Object.keys(positions).length > 0) pair.positions = positions;
    pairs.push(pair as PairSpec);
    lines.push(row.line);
  }
  return { pairs, lines };
}
