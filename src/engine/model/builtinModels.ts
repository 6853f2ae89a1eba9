import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileErrorCode, writableFolderFix } from '../../common/fileWrite';
import { errnoWords } from '../../common/errorReason';
import { UserError } from '../../common/userError';
import { writeInduction2l } from './builtin/induction2l';

/**
 * Models that ship with PatchLens: built by code on first use (deterministically, no download) into a
 * cache folder, then loaded like any checkpoint.
 */
interface BuiltinModel {
  /** Writes config.json, model.safetensors and the tokenizer files into `dir`. */
  readonly write: (dir: string) => void;
  /** Bumped when the construction changes, so an old cached copy is rebuilt. */
  readonly version: number;
}

const BUILTIN: Record<string, BuiltinModel> = {
  'induction-2l': {
    write: writeInduction2l,
    version: 1,
  },
};

export function builtinModelNames(): string[] {
  return Object.keys(BUILTIN);
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
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    m.write(tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    try {
      rmSync(tmp, { recursive: true, force: true });
    } catch {
      /* the cache cannot be written at all: nothing was left there either */
    }
    throw new UserError(
      `cannot write the built-in model ${name} into the model cache ${cacheDir} (${errnoWords(code)}); ${writableFolderFix(code, 'model cache (--cache DIR, or PATCHLENS_CACHE)')}`,
    );
  }
  return dir;
}
