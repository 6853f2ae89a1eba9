import { closeSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pkg from '../../package.json';
import { DEFAULT_MEMORY_BUDGET_MIB, type ProgressParams, type RunOutcome, type RunParams } from '../protocol/engineRpc';
import { type ModelInfo, type PairTokens, type PatchResult, RESULT_FORMAT, type RunStatus } from '../protocol/result';
import { SHARD_FORMAT, type ShardResult } from '../protocol/shard';
import { ATP_METHODS, PATH_PATCHING_SWEEP, type PatchSpec, type ResolvedPair, type ResolvedSpec, type ResultSweepName } from '../protocol/spec';
import type { LoadedModel, ModelCache } from './modelLoader';
import type { ResolvedModel } from './model/hub';
import { parseSpecText } from '../spec/parseSpec';
import { resolveSpec } from './patching/resolveSpec';
import { type PatchingOptions, type PatchingOutcome, runPatching } from './patching/runPatching';
import { runShard, type ShardShare } from './patching/runShard';
import { pngSuffix, writeSweepPng } from './render/heatmapPng';
import { CancelledError, isCancelled } from '../common/cancelled';
import { readFileOrPipe, SPEC_FILE } from '../common/fileRead';
import { createTempBeside, fileErrorCode, writableFolderFix } from '../common/fileWrite';
import { type AttributionOutcome, runAttribution } from './attribution/runAttribution';
import { claimResultPath, writeResultFile } from '../common/resultFile';
import { shardFileName, specHash, writeShardFile } from '../common/shardFile';
import { isUserError, UserError } from '../common/userError';
import { errnoWords, errorMessage } from '../common/errorReason';

export interface RunContext {
  readonly models: ModelCache;
  readonly signal?: AbortSignal;
  readonly progress?: (p: Omit<ProgressParams, 'runId'>) => void;
  readonly log?: (message: string) => void;
  /** The model, as the result will record it, once it is loaded. */
  readonly modelLoaded?: (model: ModelInfo) => void;
  /** Told the result file's path as soon as it exists, before the PNGs are drawn: whatever follows, a front end can show it. */
  readonly onResult?: (path: string) => void;
}

interface SpecRead {
  spec: PatchSpec;
  text?: string;
  /** The spec is not a file in a folder of files (a pipe, /dev/stdin): its folder anchors nothing. */
  special: boolean;
}

async function readSpec(params: RunParams, signal: AbortSignal | undefined): Promise<SpecRead> {
  if (params.selection) return { spec: parseSpecText(JSON.stringify(params.selection.spec), params.specFile), special: false };
  if (params.specText !== undefined) return { spec: parseSpecText(params.specText, params.specFile), text: params.specText, special: false };
  const { data, regular } = await readFileOrPipe(params.specFile, SPEC_FILE, signal);
  const text = data.toString('utf8');
  // /dev/stdin, /dev/fd/N and /proc/self/fd/N name a descriptor, even when it is a redirected regular file.
  const special = !regular || /^\/(dev|proc)\//.test(params.specFile);
  return { spec: parseSpecText(text, params.specFile), text, special };
}

/** Why `dir` cannot take new files (its errno code), or undefined when it can: created if needed, then probed. */
function unwritable(dir: string): string | undefined {
  try {
    mkdirSync(dir, { recursive: true });
    const { fd, tmp } = createTempBeside(join(dir, '.patchlens-probe'));
    closeSync(fd);
    rmSync(tmp, { force: true });
    return undefined;
  } catch (e) {
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    return code;
  }
}

/**
 * The results folder, checked before any work: `--out` as given; else `.patchlens/runs` beside the spec,
 * or the current directory's when the spec is not in a real folder or its folder cannot be written.
 */
function resultsFolder(params: RunParams, specFile: string, special: boolean, log: RunContext['log']): string {
  if (params.outDir) {
    const dir = resolve(params.outDir);
    const code = unwritable(dir);
    if (code) throw new UserError(`cannot write results to ${dir} (${errnoWords(code)}); ${writableFolderFix(code, RESULTS_FOLDER)}`);
    return dir;
  }
  const here = resolve('.patchlens', 'runs');
  const beside = join(dirname(specFile), '.patchlens', 'runs');
  if (!special) {
    const code = unwritable(beside);
    if (!code) return beside;
    if (beside === here) throw new UserError(`cannot write results to ${beside} (${errnoWords(code)}); ${writableFolderFix(code, RESULTS_FOLDER)}`);
    const second = unwritable(here);
    if (second)
      throw new UserError(
        `cannot write results beside the spec (${beside}: ${errnoWords(code)}) or in ${here} (${errnoWords(second)}); ${writableFolderFix(code, RESULTS_FOLDER)}`,
      );
    log?.(`cannot write results beside the spec (${beside}: ${errnoWords(code)}); they go to ${here} (--out DIR to choose)`);
    return here;
  }
  const code = unwritable(here);
  if (code) throw new UserError(`the spec ${specFile} is not a file in a folder, and ${here} cannot be written (${errnoWords(code)}); pass --out DIR`);
  log?.(`the spec ${specFile} is not a file in a folder (a pipe or a descriptor): results go to ${here} (--out DIR to choose)`);
  return here;
}

const RESULTS_FOLDER = 'results folder (--out DIR, or the patchlens.resultsFolder setting)';

function promptTokens(m: LoadedModel, ids: number[], ranges: ([number, number] | null)[] | undefined) {
  return { ids, strings: ids.map((id) => m.tokenizer.tokenString(id)), ranges: ids.map((_, i) => ranges?.[i] ?? null) };
}

function pairTokens(m: LoadedModel, p: ResolvedPair, ablation: boolean): PairTokens {
  return {
    clean: promptTokens(m, p.clean, p.cleanRanges),
    // An ablation run has no corrupted prompt.
    ...(ablation ? {} : { corrupted: promptTokens(m, p.corrupted, p.corruptedRanges) }),
    ...(p.labels ? { labels: p.labels } : {}),
  };
}

/** Where the model was found, in the words of the run's first line. */
function describeLocation(source: string, where: ResolvedModel): string {
  if (where.kind === 'builtin') return `${source} (built in)`;
  if (where.kind === 'hub') return `${source} from the hub (${where.repo}, cached in ${where.dir})`;
  const also = where.shadowsHubId ? `, not the hub model '${source}': rename the folder or give the hub id as org/name to use the hub's` : '';
  return `${source} from the folder ${where.dir}${also}`;
}

/**
 * A run's result written where it was asked, else (a full disk, a folder gone read-only since the
 * start) in a new temporary folder: results computed are never lost. `warning` says what happened.
 */
function writeResultSomewhere(dir: string, name: string, companions: string[], result: PatchResult): { path: string; warning?: string } {
  try {
    const path = claimResultPath(dir, name, companions);
    try {
      writeResultFile(path, result);
    } catch (e) {
      rmSync(path, { force: true });
      throw e;
    }
    return { path };
  } catch (e) {
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    let path: string;
    try {
      path = claimResultPath(mkdtempSync(join(tmpdir(), 'patchlens-')), name, companions);
      writeResultFile(path, result);
    } catch (e2) {
      throw new UserError(
        `cannot write the result to ${dir} (${errnoWords(code)}) nor to a temporary folder (${errnoWords(fileErrorCode(e2) ?? String(e2))}); ${writableFolderFix(code, RESULTS_FOLDER)}`,
      );
    }
    return { path, warning: `cannot write the result to ${dir} (${errnoWords(code)}); it was written to ${path} instead; ${writableFolderFix(code, RESULTS_FOLDER)}` };
  }
}

/**
 * One run from a spec to a result file: read and check the spec, load the model, run the baselines and
 * sweeps, write the result (done, cancelled with the sweeps that finished, or failed), then PNGs.
 * A cancel before there is anything to keep is a CancelledError.
 */
export async function runSpec(params: RunParams, ctx: RunContext): Promise<RunOutcome> {
  try {
    return await runSpecUncancelled(params, ctx);
  } catch (e) {
    if (ctx.signal?.aborted && !isUserError(e) && !isCancelled(e)) throw new CancelledError('cancelled before any sweep ran; nothing was written', { cause: e });
    throw e;
  }
}

async function runSpecUncancelled(params: RunParams, ctx: RunContext): Promise<RunOutcome> {
  const started = Date.now();
  // As the spec's verify_top allows (schemas/patch.schema.json).
  if (params.verifyTop !== undefined && !(Number.isInteger(params.verifyTop) && params.verifyTop >= 0 && params.verifyTop <= 1000)) {
    throw new UserError(`the number of estimates to verify, ${JSON.stringify(params.verifyTop)}, is not a whole number from 0 to 1000; give one such as 10`);
  }
  const specFile = resolve(params.specFile);
  const { spec, text, special } = await readSpec({ ...params, specFile }, ctx.signal);
  // An empty --model means none was given: the spec's.
  const source = params.model || spec.model;
  if (!source) throw new UserError(`${specFile}: no model given; add "model": "gpt2" (a hub id, a folder, or induction-2l) to the spec, or pass --model`);
  const outDir = resultsFolder(params, specFile, special, ctx.log);
  const loaded = await ctx.models.get({
    source,
    baseDir: special ? process.cwd() : dirname(specFile),
    settings: params,
    signal: ctx.signal,
    log: ctx.log,
    onLocated: (where) => ctx.progress?.({ phase: 'load', message: `loading ${describeLocation(source, where)}` }),
    onDownload: (d) => ctx.progress?.({ phase: 'download', message: `downloading ${d.file}`, done: d.received, ...(d.total !== undefined ? { total: d.total } : {}) }),
  });
  ctx.signal?.throwIfAborted();
  const cfg = loaded.model.cfg;
  const model: ModelInfo = {
    id: loaded.id,
    location: loaded.location,
    // nKvHeads: the panel labels which query heads share a key/value head.
    config: { nLayers: cfg.nLayers, nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads, dModel: cfg.dModel, dHead: cfg.dHead, dMlp: cfg.dMlp, dVocab: cfg.dVocab, nCtx: cfg.nCtx },
    architecture: cfg.architecture,
    dtype: 'float32',
    weightsDtype: cfg.weightsDtype,
    provider: loaded.model.runtime.provider,
    weightProcessing: 'none',
  };
  ctx.modelLoaded?.(model);
  const fromSpec: ResolvedSpec = resolveSpec(spec, loaded.tokenizer, loaded.model.cfg, {
    file: specFile,
    ...(text !== undefined ? { text } : {}),
    ...(params.selection ? { sources: params.selection.sources } : {}),
  });
  const resolved: ResolvedSpec = { ...fromSpec, ...(params.method ? { method: params.method } : {}), ...(params.verifyTop !== undefined ? { verifyTop: params.verifyTop } : {}) };
  const attribution = ATP_METHODS.includes(resolved.method ?? 'exact');
  const mode = params.mode ?? 'fast';
  const base = {
    format: RESULT_FORMAT,
    name: resolved.name,
    createdAt: new Date(started).toISOString(),
    spec,
    source: params.selection?.document ?? specFile,
    model,
    metric: resolved.metric,
    direction: resolved.ablation ? 'noising' : (resolved.direction ?? 'denoising'),
    ...(resolved.ablation ? { ablation: resolved.ablation } : {}),
    tokens: resolved.pairs.map((p) => pairTokens(loaded, p, resolved.ablation !== undefined)),
  } as const;
  const options = {
    mode,
    ...(params.memoryBudgetMiB !== undefined ? { memoryBudgetMiB: params.memoryBudgetMiB } : {}),
    signal: ctx.signal,
    onProgress: (p: { sweep: string; done: number; total: number }) => ctx.progress?.({ phase: 'sweep' as const, message: p.sweep, done: p.done, total: p.total }),
  };
  if (params.shard) {
    if (attribution)
      throw new UserError(`--shard splits exact patching's sweeps; method '${resolved.method}' estimates every index from a few passes and is not split: run it without --shard`);
    if (resolved.pathPatching) throw new UserError('--shard does not split path patching: run a spec with "path_patching" without --shard');
    return runShardOf(params.shard, params, ctx, { loaded, resolved, base, outDir, options, started });
  }
  const drawn: ResultSweepName[] = [...resolved.sweeps, ...(resolved.pathPatching ? ([PATH_PATCHING_SWEEP] as const) : [])];
  const companions = params.png ? drawn.map(pngSuffix) : [];
  // The file is claimed only once there is something to keep: a spec error leaves no empty run behind.
  const finish = (status: RunStatus, outcome: Partial<Pick<AttributionOutcome, 'baselines' | 'attribution' | 'patchSets'>> & Pick<PatchingOutcome, 'sweeps'>, message?: string) => {
    const result: PatchResult = {
      ...base,
      status,
      ...(message !== undefined ? { message } : {}),
      engine: { version: pkg.version, mode, seconds: (Date.now() - started) / 1000 },
      ...(outcome.baselines ? { baselines: outcome.baselines } : {}),
      sweeps: outcome.sweeps,
      ...(outcome.attribution ? { attribution: outcome.attribution } : {}),
      ...(outcome.patchSets ? { patchSets: outcome.patchSets } : {}),
    };
    const written = writeResultSomewhere(outDir, resolved.name, companions, result);
    ctx.onResult?.(written.path);
    return { result, ...written };
  };

  let outcome: PatchingOutcome & Partial<Pick<AttributionOutcome, 'attribution'>>;
  try {
    ctx.progress?.({ phase: 'baseline', message: 'clean and corrupted baselines' });
    outcome = attribution ? await runAttribution(loaded.model, resolved, options) : await runPatching(loaded.model, resolved, options);
  } catch (e) {
    // A user error (equal baselines of a normalized metric, say) is reported, not recorded as a run.
    if (!isUserError(e)) finish('failed', { sweeps: {} }, `internal error: ${errorMessage(e)}`);
    throw e;
  }
  const message =
    outcome.status === 'cancelled' ? `cancelled after ${Object.keys(outcome.sweeps).length} of ${resolved.sweeps.length + (resolved.pathPatching ? 1 : 0)} sweeps` : undefined;
  ctx.progress?.({ phase: 'write', message: 'writing the result' });
  const { result, path, warning } = finish(outcome.status, outcome, message);
  const pngPaths: string[] = [];
  let pngWarning: string | undefined;
  for (const sweep of params.png ? (Object.keys(result.sweeps) as ResultSweepName[]) : []) {
    try {
      pngPaths.push(await writeSweepPng(result, sweep, path));
    } catch (e) {
      const code = fileErrorCode(e);
      if (code === undefined) throw e;
      pngWarning = `cannot write the heatmap PNG of ${sweep} beside ${path} (${errnoWords(code)}); the result itself is written; ${writableFolderFix(code, RESULTS_FOLDER)}`;
      break;
    }
  }
  const warnings = [warning, pngWarning].filter((w) => w !== undefined).join('; also ');
  return { runId: params.runId, resultPath: path, status: outcome.status, ...(message ? { message } : {}), pngPaths, ...(warnings ? { warning: warnings } : {}) };
}

/**
 * `--shard i/n`: this shard's share of the sweeps, written as `<name>.shard-i-of-n.json` (replacing an
 * earlier attempt of the same shard) once the share is done; a cancelled shard writes nothing.
 */
async function runShardOf(
  share: ShardShare,
  params: RunParams,
  ctx: RunContext,
  run: {
    loaded: LoadedModel;
    resolved: ResolvedSpec;
    base: Omit<PatchResult, 'status' | 'engine' | 'sweeps' | 'patchSets'>;
    outDir: string;
    options: PatchingOptions;
    started: number;
  },
): Promise<RunOutcome> {
  const { index, count } = share;
  ctx.progress?.({ phase: 'baseline', message: `shard ${index}/${count}: clean and corrupted baselines` });
  const modelHash = run.loaded.model.weightsDigest();
  const outcome = await runShard(run.loaded.model, run.resolved, share, run.options);
  if (outcome.status === 'cancelled') throw new CancelledError(`cancelled; shard ${index}/${count} wrote nothing: run it again`);
  ctx.progress?.({ phase: 'write', message: 'writing the shard' });
  const shard: ShardResult = {
    ...run.base,
    format: SHARD_FORMAT,
    status: 'done',
    engine: { version: pkg.version, mode: run.options.mode ?? 'fast', seconds: (Date.now() - run.started) / 1000 },
    baselines: outcome.baselines,
    shard: {
      index,
      count,
      specHash: specHash(run.base),
      modelHash,
      memoryBudgetMiB: params.memoryBudgetMiB ?? DEFAULT_MEMORY_BUDGET_MIB,
      units: outcome.units,
      planHash: outcome.planHash,
    },
    sweeps: outcome.sweeps,
    ...(outcome.patchSets ? { patchSets: outcome.patchSets } : {}),
  };
  const path = join(run.outDir, shardFileName(run.resolved.name, index, count));
  try {
    writeShardFile(path, shard);
  } catch (e) {
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    throw new UserError(`cannot write the shard to ${path} (${errnoWords(code)}); ${writableFolderFix(code, RESULTS_FOLDER)}`);
  }
  ctx.onResult?.(path);
  return { runId: params.runId, resultPath: path, status: 'done', pngPaths: [] };
}
