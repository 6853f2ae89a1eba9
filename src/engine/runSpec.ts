import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import pkg from '../../package.json';
import type { ProgressParams, RunOutcome, RunParams } from '../protocol/engineRpc';
import { type ModelInfo, type PairTokens, type PatchResult, RESULT_FORMAT, type RunStatus } from '../protocol/result';
import type { PatchSpec, ResolvedPair, ResolvedSpec } from '../protocol/spec';
import type { LoadedModel, ModelCache } from './modelLoader';
import { parseSpecText } from '../spec/parseSpec';
import { resolveSpec } from './patching/resolveSpec';
import { type PatchingOutcome, runPatching } from './patching/runPatching';
import { writeSweepPngs } from './render/heatmapPng';
import { claimResultPath, writeResultFile } from '../common/resultFile';
import { isUserError, UserError } from '../common/userError';
import { errnoReason, errorMessage } from '../common/errorReason';

export interface RunContext {
  readonly models: ModelCache;
  readonly signal?: AbortSignal;
  readonly progress?: (p: Omit<ProgressParams, 'runId'>) => void;
  readonly log?: (message: string) => void;
  /** The model, as the result will record it, once it is loaded. */
  readonly modelLoaded?: (model: ModelInfo) => void;
}

function readSpec(params: RunParams): { spec: PatchSpec; text?: string } {
  if (params.selection) return { spec: parseSpecText(JSON.stringify(params.selection.spec), params.specFile) };
  let text = params.specText;
  if (text === undefined) {
    try {
      text = readFileSync(params.specFile, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read the spec ${params.specFile}: ${errnoReason(e)}; check the path`);
    }
  }
  return { spec: parseSpecText(text, params.specFile), text };
}

function promptTokens(m: LoadedModel, ids: number[], ranges: ([number, number] | null)[] | undefined) {
  return { ids, strings: ids.map((id) => m.tokenizer.tokenString(id)), ranges: ids.map((_, i) => ranges?.[i] ?? null) };
}

function pairTokens(m: LoadedModel, p: ResolvedPair): PairTokens {
  return { clean: promptTokens(m, p.clean, p.cleanRanges), corrupted: promptTokens(m, p.corrupted, p.corruptedRanges) };
}

/**
 * One run from a spec to a result file: read and check the spec, load the model, run the baselines and
 * sweeps, write the result (done, cancelled with the sweeps that finished, or failed), then PNGs.
 */
export async function runSpec(params: RunParams, ctx: RunContext): Promise<RunOutcome> {
  const started = Date.now();
  const specFile = resolve(params.specFile);
  const { spec, text } = readSpec({ ...params, specFile });
  const source = params.model ?? spec.model;
  if (!source) throw new UserError(`${specFile}: no model given; add "model": "gpt2" (a hub id, a folder, or induction-2l) to the spec, or pass --model`);
  ctx.progress?.({ phase: 'load', message: `loading ${source}` });
  const loaded = await ctx.models.get({
    source,
    baseDir: dirname(specFile),
    settings: params,
    signal: ctx.signal,
    log: ctx.log,
    onDownload: (d) => ctx.progress?.({ phase: 'download', message: `downloading ${d.file}`, done: d.received, ...(d.total !== undefined ? { total: d.total } : {}) }),
  });
  const cfg = loaded.model.cfg;
  const model: ModelInfo = {
    id: loaded.id,
    // nKvHeads: the panel labels which query heads share a key/value head.
    config: { nLayers: cfg.nLayers, nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads, dModel: cfg.dModel, dHead: cfg.dHead, dMlp: cfg.dMlp, dVocab: cfg.dVocab, nCtx: cfg.nCtx },
    dtype: 'float32',
    provider: loaded.model.runtime.provider,
    weightProcessing: 'none',
  };
  ctx.modelLoaded?.(model);
  const resolved: ResolvedSpec = resolveSpec(spec, loaded.tokenizer, loaded.model.cfg, {
    file: specFile,
    ...(text !== undefined ? { text } : {}),
    ...(params.selection ? { sources: params.selection.sources } : {}),
  });
  const outDir = params.outDir ? resolve(params.outDir) : join(dirname(specFile), '.patchlens', 'runs');
  const mode = params.mode ?? 'fast';
  const base = {
    format: RESULT_FORMAT,
    name: resolved.name,
    createdAt: new Date(started).toISOString(),
    spec,
    source: params.selection?.document ?? specFile,
    model,
    metric: resolved.metric,
    tokens: resolved.pairs.map((p) => pairTokens(loaded, p)),
  } as const;
  // The file is claimed only once there is something to keep: a spec error leaves no empty run behind.
  const finish = (status: RunStatus, outcome: Partial<Pick<PatchingOutcome, 'baselines'>> & Pick<PatchingOutcome, 'sweeps'>, message?: string) => {
    const result: PatchResult = {
      ...base,
      status,
      ...(message !== undefined ? { message } : {}),
      engine: { version: pkg.version, mode, seconds: (Date.now() - started) / 1000 },
      ...(outcome.baselines ? { baselines: outcome.baselines } : {}),
      sweeps: outcome.sweeps,
    };
    const path = claimResultPath(outDir, resolved.name);
    writeResultFile(path, result);
    return { result, path };
  };

  let outcome: PatchingOutcome;
  try {
    ctx.progress?.({ phase: 'baseline', message: 'clean and corrupted baselines' });
    outcome = await runPatching(loaded.model, resolved, {
      mode,
      ...(params.memoryBudgetMiB !== undefined ? { memoryBudgetMiB: params.memoryBudgetMiB } : {}),
      signal: ctx.signal,
      onProgress: (p) => ctx.progress?.({ phase: 'sweep', message: p.sweep, done: p.done, total: p.total }),
    });
  } catch (e) {
    // A user error (equal baselines of a normalized metric, say) is reported, not recorded as a run.
    if (!isUserError(e)) finish('failed', { sweeps: {} }, `internal error: ${errorMessage(e)}`);
    throw e;
  }
  const message = outcome.status === 'cancelled' ? `cancelled after ${Object.keys(outcome.sweeps).length} of ${resolved.sweeps.length} sweeps` : undefined;
  ctx.progress?.({ phase: 'write', message: 'writing the result' });
  const { result, path } = finish(outcome.status, outcome, message);
  const pngPaths = params.png ? await writeSweepPngs(result, outDir) : [];
  return { runId: params.runId, resultPath: path, status: outcome.status, ...(message ? { message } : {}), pngPaths };
}
