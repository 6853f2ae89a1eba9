import { closeSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PatchResult } from '../protocol/result';

/** A file-name-safe form of a run's name. */
export function safeFileStem(name: string): string {
  const stem = name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return stem === '' ? 'run' : stem.slice(0, 120);
}

/**
 * Claims `<dir>/<name>.result.json`, or `<name>-2.result.json`, ... when that exists: a second run of a
 * spec never overwrites the first. The claim is an exclusive create, so two windows cannot take the
 * same name.
 */
export function claimResultPath(dir: string, name: string): string {
  mkdirSync(dir, { recursive: true });
  const stem = safeFileStem(name);
  for (let n = 1; ; n++) {
    const path = join(dir, `${stem}${n === 1 ? '' : `-${n}`}.result.json`);
    try {
      closeSync(openSync(path, 'wx'));
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** Writes a result atomically (temp file + rename): a reader sees the old content or the new, never half. */
export function writeResultFile(path: string, result: PatchResult): void {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  writeFileSync(tmp, JSON.stringify(result) + '\n');
  renameSync(tmp, path);
}
