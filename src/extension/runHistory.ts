/**
 * The runs recorded in results folders: the summaries the runs view lists (cached by mtime and size),
 * whether a run got as far as writing its result, and the 'failed' record of a run whose engine died
 * before it could write one. Plain Node.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type ModelInfo, type PatchResult, RESULT_FORMAT, type RunStatus } from '../protocol/result';
import type { PatchSpec } from '../protocol/spec';
import { claimResultPath, readResultFile, RESULT_SUFFIX, writeResultFile } from '../common/resultFile';
import { safeFileStem } from '../common/fileName';
import pkg from '../../package.json';
import { errorMessage } from '../common/errorReason';

export interface RunSummary {
  readonly kind: 'result';
  readonly path: string;
  readonly name: string;
  readonly status: RunStatus;
  readonly model: string;
  readonly sweeps: string[];
  /** How many patch sets the run evaluated. */
  readonly patchSets: number;
  readonly createdAt: string;
  readonly message?: string;
  readonly source?: string;
}

/** A file in a results folder that is not a result this version can read: listed, never fatal. */
export interface UnreadableRun {
  readonly kind: 'unreadable';
  readonly path: string;
  readonly reason: string;
}

export type RunFileEntry = RunSummary | UnreadableRun;

/** What a run holds, for its line in the runs view: its sweep (or how many sweeps) and its patch sets. */
export function runContents(e: Pick<RunSummary, 'sweeps' | 'patchSets'>): string {
  const parts: string[] = [];
  if (e.sweeps.length === 1) parts.push(e.sweeps[0]!);
  else if (e.sweeps.length > 1) parts.push(`${e.sweeps.length} sweeps`);
  if (e.patchSets > 0) parts.push(e.patchSets === 1 ? '1 patch set' : `${e.patchSets} patch sets`);
  return parts.join(' + ');
}

function summarize(path: string, r: PatchResult): RunSummary {
  return {
    kind: 'result',
    path,
    name: r.name,
    status: r.status,
    model: r.model.id,
    sweeps: Object.keys(r.sweeps),
    patchSets: r.patchSets?.length ?? 0,
    createdAt: typeof r.createdAt === 'string' ? r.createdAt : '',
    ...(r.message !== undefined ? { message: r.message } : {}),
    ...(r.source !== undefined ? { source: r.source } : {}),
  };
}

/**
 * Summaries of the result files in a folder, newest first. The cache (path → mtime and size) keeps a
 * refresh after each run from re-parsing every older result.
 */
export class RunHistory {
  private readonly cache = new Map<string, { stamp: string; entry: RunFileEntry }>();

  list(folder: string): RunFileEntry[] {
    let names: string[];
    try {
      names = readdirSync(folder).filter((n) => n.endsWith(RESULT_SUFFIX));
    } catch {
      return [];
    }
    const entries: { entry: RunFileEntry; time: number }[] = [];
    for (const n of names) {
      const path = join(folder, n);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue; // deleted while listing
      }
      if (!st.isFile()) continue;
      const stamp = `${st.mtimeMs}:${st.size}`;
      let entry = this.cache.get(path)?.stamp === stamp ? this.cache.get(path)!.entry : undefined;
      if (!entry) {
        // claimResultPath creates the file empty before the run writes it: a run still in progress.
        if (st.size === 0) continue;
        try {
          entry = summarize(path, readResultFile(path));
        } catch (e) {
          entry = { kind: 'unreadable', path, reason: errorMessage(e) };
        }
        this.cache.set(path, { stamp, entry });
      }
      const created = entry.kind === 'result' ? Date.parse(entry.createdAt) : NaN;
      entries.push({ entry, time: Number.isNaN(created) ? st.mtimeMs : created });
    }
    return entries.sort((a, b) => b.time - a.time).map((e) => e.entry);
  }
}

/**
 * A result of run `name` in `dir` created at or after `since` (ms): tells whether an engine that died
 * got as far as writing its result, so a crash does not add a second, failed record of a finished run.
 */
export function findResultSince(dir: string, name: string, since: number): string | undefined {
  const stem = safeFileStem(name);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  const mine = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}(-\\d+)?${RESULT_SUFFIX.replace(/\./g, '\\.')}$`);
  for (const n of names) {
    if (!mine.test(n)) continue;
    const path = join(dir, n);
    try {
      const st = statSync(path);
      if (st.size === 0 || st.mtimeMs < since - 1000) continue;
      const r = readResultFile(path);
      if (Date.parse(r.createdAt) >= since - 1000) return path;
    } catch {
      /* not a finished result */
    }
  }
  return undefined;
}

export interface FailedRun {
  readonly outDir: string;
  readonly name: string;
  readonly spec: PatchSpec;
  readonly source?: string;
  readonly modelId: string;
  /** The model as the engine reported it once loaded; absent when the engine died before that. */
  readonly model?: ModelInfo;
  readonly message: string;
  readonly startedAt: number;
}

/**
 * Records a run the engine could not finish (it crashed or was killed): what ran and why it failed,
 * with the model the engine reported, or only its name (no config, no provider) when the engine died
 * before it had loaded it.
 */
export function writeFailedResult(f: FailedRun): string {
  const result: PatchResult = {
    format: RESULT_FORMAT,
    name: f.name,
    status: 'failed',
    message: f.message,
    createdAt: new Date(f.startedAt).toISOString(),
    spec: f.spec,
    ...(f.source !== undefined ? { source: f.source } : {}),
    model: f.model ?? { id: f.modelId, dtype: 'float32', weightProcessing: 'none' },
    engine: { version: pkg.version, mode: 'fast', seconds: (Date.now() - f.startedAt) / 1000 },
    metric: f.spec.metric,
    tokens: [],
    sweeps: {},
  };
  const path = claimResultPath(f.outDir, f.name);
  writeResultFile(path, result);
  return path;
}
