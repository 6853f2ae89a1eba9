import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeInduction2l } from './builtin/induction2l';

/**
 * Models that ship with PatchLens: built by code on first use (deterministically, no download) into a
 * cache folder, then loaded like any checkpoint.
 */
interface BuiltinModel {
  readonly description: string;
  /** Writes config.json, model.safetensors and the tokenizer files into `dir`. */
  readonly write: (dir: string) => void;
  /** Bumped when the construction changes, so an old cached copy is rebuilt. */
  readonly version: number;
}

const BUILTIN: Record<string, BuiltinModel> = {
  'induction-2l': {
    description: 'induction-2l (built in): 2-layer attention-only model with a constructed induction circuit',
    write: writeInduction2l,
    version: 1,
  },
};

export function builtinModelNames(): { name: string; description: string }[] {
  return Object.entries(BUILTIN).map(([name, m]) => ({ name, description: m.description }));
}

export function isBuiltinModel(name: string): boolean {
  return Object.hasOwn(BUILTIN, name);
}

/** The built-in model's folder under `cacheDir`, built there first if needed (atomically). */
export function builtinModelDir(name: string, cacheDir: string): string {
  const m = BUILTIN[name];
  if (!m) throw new Error(`no built-in model named ${name}`);
  const dir = join(cacheDir, 'builtin', `${name}-v${m.version}`);
  if (existsSync(join(dir, 'model.safetensors'))) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  m.write(tmp);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return dir;
}
