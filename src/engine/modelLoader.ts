import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DeviceSetting, EngineSettings } from '../protocol/engineRpc';
import type { ModelLocation } from '../protocol/result';
import { HookedTransformer } from './hookedTransformer';
import { builtinModelDir, isBuiltinModel } from './model/builtinModels';
import { loadCheckpoint } from './model/checkpoint';
import { resolveModel, type ResolvedModel } from './model/hub';
import { loadTokenizer } from './model/textTokenizer';
import type { TextTokenizer } from './model/tokenizer';
import { type Logger, Runtime } from './runtime';

export interface LoadedModel {
  /** What the user named: a hub id, a folder, or a built-in model. */
  readonly id: string;
  readonly dir: string;
  readonly location: ModelLocation;
  readonly model: HookedTransformer;
  readonly tokenizer: TextTokenizer;
}

export interface ModelRequest {
  readonly source: string;
  /** Folder that relative model paths are relative to (the spec's). */
  readonly baseDir?: string;
  readonly settings: EngineSettings;
  readonly onDownload?: (p: { file: string; received: number; total: number | undefined }) => void;
  readonly signal?: AbortSignal;
  readonly log?: Logger;
  /** Told where the model is as soon as that is known, before its weights are read. */
  readonly onLocated?: (where: ResolvedModel) => void;
}

/** The cache root: downloads in hub/, built-in models in builtin/. */
export function cacheRoot(settings: EngineSettings): string {
  return resolve(settings.cacheDir ?? process.env.PATCHLENS_CACHE ?? join(homedir(), '.cache', 'patchlens'));
}

/** The folder of the model a request names: built in (written on first use), local, or downloaded from the hub. */
export async function modelDir(req: Omit<ModelRequest, 'log'>): Promise<string> {
  return (await locateModel(req)).dir;
}

/** modelDir, also saying which kind of model it is. */
export async function locateModel(req: Omit<ModelRequest, 'log'>): Promise<ResolvedModel> {
  if (isBuiltinModel(req.source)) return { kind: 'builtin', dir: builtinModelDir(req.source, cacheRoot(req.settings)) };
  return resolveModel(req.source, {
    baseDir: req.baseDir,
    cacheDir: join(cacheRoot(req.settings), 'hub'),
    ...(req.settings.hubEndpoint ? { endpoint: req.settings.hubEndpoint } : {}),
    ...(req.onDownload ? { onProgress: req.onDownload } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  });
}

/**
 * Keeps the last model loaded, so a researcher's next run on the same model starts at once; loading
 * another model (or the same on another device) releases the previous one first.
 */
export class ModelCache {
  private current: { key: string; loaded: Promise<LoadedModel> } | undefined;

  async get(req: ModelRequest): Promise<LoadedModel> {
    const where = await locateModel(req);
    req.onLocated?.(where);
    const { dir } = where;
    const location: ModelLocation = { kind: where.kind, dir, ...(where.repo !== undefined ? { repo: where.repo } : {}) };
    const device: DeviceSetting = req.settings.device ?? 'auto';
    const key = `${dir}|${device}`;
    if (this.current?.key === key) return this.current.loaded;
    await this.release();
    const loaded = (async (): Promise<LoadedModel> => {
      const { config, weights } = loadCheckpoint(dir);
      const tokenizer = await loadTokenizer(dir, config);
      const runtime = await Runtime.create(device, req.log);
      return { id: req.source, dir, location, model: new HookedTransformer(config, weights, runtime, tokenizer), tokenizer };
    })();
    this.current = { key, loaded };
    try {
      return await loaded;
    } catch (e) {
      this.current = undefined;
      throw e;
    }
  }

  /** The loaded model, if any, without loading one. */
  async peek(): Promise<LoadedModel | undefined> {
    return this.current?.loaded.catch(() => undefined);
  }

  async release(): Promise<void> {
    const prev = this.current;
    this.current = undefined;
    if (prev) await (await prev.loaded.catch(() => undefined))?.model.runtime.release();
  }
}
