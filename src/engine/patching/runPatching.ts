import type { PatchSetResult, SweepResult } from '../../protocol/result';
import { componentName, parseComponent } from '../../protocol/components';
import { DEFAULT_MEMORY_BUDGET_MIB, type PatchingMode } from '../../protocol/engineRpc';
import { type Direction, PATH_PATCHING_SWEEP, type PatchSetSpec, RESID_FINAL, type ResolvedSpec, type ResultSweepName } from '../../protocol/spec';
import { CancelledError } from '../cancel';
import { UserError } from '../../common/userError';
import type { HookedTransformer } from '../hookedTransformer';
import type { ModelConfig } from '../model/config';
import { blockHookName } from '../hooks';
import { ablationSource } from './ablation';
import { Metric } from './metrics';
import { captureFast, executeFast, fastUnits } from './fastExecutor';
import { captureNaive, executeNaive, naiveUnits } from './naiveExecutor';
import { componentSlot } from './componentSlots';
import { pathPatchingHooks, planPathPatching, receiverName, runPathPatching, runsPerSet, senderName, senderSets } from './pathPatching';
import { metricRows, type Patch, type PatchCapturer, type PatchExecutor, type PatchProblem, type UnitPlanner } from './problem';
import { hooksOfSweeps, type PositionAxis, planSweep, slotKey } from './sweeps';

export interface PatchingProgress {
  readonly done: number;
  readonly total: number;
  /** What is being computed: a sweep's name, 'patch sets', or path_patching. */
  readonly sweep: string;
}

export interface PatchingOptions {
  readonly mode?: PatchingMode;
  /** Working memory for patched batches, in MiB (default 1024). */
  readonly memoryBudgetMiB?: number;
  readonly onProgress?: (p: PatchingProgress) => void;
  readonly signal?: AbortSignal;
}

export const EXECUTORS: Record<PatchingMode, PatchExecutor> = { fast: executeFast, naive: executeNaive };
const CAPTURERS: Record<PatchingMode, PatchCapturer> = { fast: captureFast, naive: captureNaive };
export const UNIT_PLANNERS: Record<PatchingMode, UnitPlanner> = { fast: fastUnits, naive: naiveUnits };

export interface PatchingOutcome {
  readonly status: 'done' | 'cancelled';
  readonly baselines: Baselines;
  /** Sweeps that finished, in the spec's order, then path patching's. A cancelled run keeps those. */
  readonly sweeps: Partial<Record<ResultSweepName, SweepResult>>;
  /** The spec's patch sets, once computed. */
  readonly patchSets?: PatchSetResult[];
  readonly nPos: number;
}

/** Right-pads rows to one length; padding sits after every real token, so causality hides it. */
function padRows(rows: number[][], padId: number): { rows: number[][]; nPos: number } {
  const nPos = Math.max(...rows.map((r) => r.length));
  return { rows: rows.map((r) => [...r, ...new Array<number>(nPos - r.length).fill(padId)]), nPos };
}

/** The metric's raw baselines: the clean run's, and the corrupted run's (none in an ablation run). */
export interface Baselines {
  readonly clean: number;
  readonly corrupted?: number;
}

export interface PreparedPatching {
  readonly problem: PatchProblem;
  readonly baselines: Baselines;
  /** What the sweeps' position axes count: token positions, or the pairs' labels. */
  readonly positions: PositionAxis;
  /** Which way the patches go (an ablation is noising: values written into the clean run). */
  readonly direction: Direction;
}

/** The parts of each of the spec's patch sets, checked against the model and the pairs. */
export function patchSetParts(spec: ResolvedSpec, cfg: ModelConfig): Patch[] {
  return (spec.patchSets ?? []).map((set, k) => set.components.map((c) => componentSlot(c, cfg, spec, `patch_sets[${k}] (${JSON.stringify(set.name)})`)));
}

/** A labelled spec's sweeps run over its labels, each pair at its own positions; any other over token positions. */
export function positionAxis(spec: Pick<ResolvedSpec, 'labels' | 'pairs'>, nPos: number): PositionAxis {
  if (!spec.labels) return { kind: 'index', n: nPos };
  return { kind: 'label', labels: spec.labels, at: spec.labels.map((label) => spec.pairs.map((p) => p.labels![label]!)) };
}

/**
 * The runs every patch starts from. The run the patches go into (the corrupted prompts when denoising,
 * the clean ones when noising or ablating) caches what the fast executor starts from (resid_pre, keys,
 * values) and every hook patched; the source (the other run, or the ablation's zeros or means computed
 * from the clean run) every hook patched. Also the metric's baselines.
 */
export async function preparePatching(
  model: HookedTransformer,
  spec: ResolvedSpec,
  opts: Pick<PatchingOptions, 'memoryBudgetMiB' | 'signal'> & {
    /** Attribution differentiates the run the patches go into: its cache also keeps every block's input and the last block's output. */
    readonly gradient?: boolean;
  } = {},
): Promise<PreparedPatching> {
  const budgetMiB: unknown = opts.memoryBudgetMiB ?? DEFAULT_MEMORY_BUDGET_MIB;
  // A NaN budget (a setting that is not a number) would make the executors' batch size NaN, and
  // their loops would skip every patch; refused before any work is done.
  if (typeof budgetMiB !== 'number' || !(budgetMiB > 0)) {
    throw new UserError(`the memory budget '${String(budgetMiB)}' MiB is not a positive number; give a number of MiB such as ${DEFAULT_MEMORY_BUDGET_MIB}`);
  }
  const cfg = model.cfg;
  const pad = cfg.bosTokenId;
  const { rows: clean, nPos } = padRows(
    spec.pairs.map((p) => p.clean),
    pad,
  );
  const { rows: corrupted } = padRows(
    spec.pairs.map((p) => p.corrupted),
    pad,
  );
  const metric = new Metric(spec.metric, spec.pairs, cfg.dVocab);
  const direction: Direction = spec.ablation ? 'noising' : (spec.direction ?? 'denoising');

  const hooks = new Set([
    ...hooksOfSweeps(spec.sweeps, cfg),
    ...patchSetParts(spec, cfg)
      .flat()
      .map((s) => s.hook),
  ]);
  if (spec.pathPatching) for (const h of pathPatchingHooks(planPathPatching(spec.pathPatching, cfg))) hooks.add(h);
  const sourceCapture: string[] = [];
  const runCapture: string[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    for (const h of hooks) sourceCapture.push(blockHookName(l, h));
    for (const h of new Set([...hooks, 'hook_resid_pre', 'attn.hook_q', 'attn.hook_k', 'attn.hook_v'] as const)) runCapture.push(blockHookName(l, h));
  }
  if (opts.gradient) {
    const more = [...Array.from({ length: cfg.nLayers }, (_, l) => blockHookName(l, 'hook_resid_pre')), blockHookName(cfg.nLayers - 1, 'hook_resid_post')];
    for (const name of more) if (!runCapture.includes(name)) runCapture.push(name);
  }
  const problemBase = { model, pairs: spec.pairs, nPos, metric };
  const rows1 = metricRows(problemBase, 1);
  const denoising = direction === 'denoising';
  const cleanRun = await model.forward(clean, { capture: denoising ? sourceCapture : runCapture, logitRows: rows1, signal: opts.signal });
  metric.setCleanLogits(cleanRun.logits.data);
  const corruptedRun = spec.ablation ? undefined : await model.forward(corrupted, { capture: denoising ? runCapture : sourceCapture, logitRows: rows1, signal: opts.signal });
  const baselines: Baselines = { clean: metric.raw(cleanRun.logits.data), ...(corruptedRun ? { corrupted: metric.raw(corruptedRun.logits.data) } : {}) };
  metric.checkBaselines(baselines);
  const run = denoising ? corruptedRun! : cleanRun;
  const lengths = spec.pairs.map((p) => p.clean.length);
  const sourceCache = spec.ablation ? ablationSource(cfg, cleanRun.cache, sourceCapture, spec.ablation, lengths) : denoising ? cleanRun.cache : corruptedRun!.cache;
  return {
    baselines,
    direction,
    positions: positionAxis(spec, nPos),
    problem: {
      ...problemBase,
      run: denoising ? corrupted : clean,
      sourceCache,
      runCache: run.cache,
      runLogits: run.logits.data,
      memoryBudget: budgetMiB * 2 ** 20,
    },
  };
}

/**
 * Runs the baselines, every sweep and every patch set of a resolved spec. Progress counts prompt
 * pairs × patches: a patched run of n pairs is n units of work.
 */
export async function runPatching(model: HookedTransformer, spec: ResolvedSpec, opts: PatchingOptions = {}): Promise<PatchingOutcome> {
  const mode = opts.mode ?? 'fast';
  const execute = EXECUTORS[mode];
  const sets = patchSetParts(spec, model.cfg);
  // Checked before any work: a receiver the model lacks is the spec's mistake.
  const path = spec.pathPatching ? planPathPatching(spec.pathPatching, model.cfg) : undefined;
  const { problem, baselines, positions, direction } = await preparePatching(model, spec, opts);
  const { metric, nPos } = problem;
  const nPairs = spec.pairs.length;
  const plans = spec.sweeps.map((name) => planSweep(name, model.cfg, positions));
  const known = new Map<string, number>();
  const pathSets = path ? senderSets(path, model.cfg) : [];
  const pathRuns = path ? pathSets.length * runsPerSet(path) : 0;
  const total = nPairs * (new Set(plans.flatMap((p) => p.slots.map(slotKey))).size + sets.length + pathRuns);
  const sweeps: Partial<Record<ResultSweepName, SweepResult>> = {};
  const normalize = (raw: number) => metric.normalize(raw, baselines, direction);
  let patchSets: PatchSetResult[] | undefined;
  try {
    for (const plan of plans) {
      const todo = plan.slots.filter((s) => !known.has(slotKey(s)));
      const before = known.size;
      const raw = await execute(
        problem,
        todo.map((s) => [s]),
        { signal: opts.signal, onProgress: (done) => opts.onProgress?.({ done: nPairs * (before + done), total, sweep: plan.name }) },
      );
      todo.forEach((s, i) => known.set(slotKey(s), raw[i]!));
      const values = Array.from(plan.valueSlot, (i) => (i < 0 ? null : normalize(known.get(slotKey(plan.slots[i]!))!)));
      sweeps[plan.name] = {
        shape: plan.shape,
        axes: plan.axes,
        values,
        ...(plan.components ? { components: plan.components } : {}),
        ...(plan.labels ? { labels: plan.labels } : {}),
      };
    }
    if (sets.length > 0) {
      const before = known.size;
      const raw = await execute(problem, sets, { signal: opts.signal, onProgress: (done) => opts.onProgress?.({ done: nPairs * (before + done), total, sweep: 'patch sets' }) });
      patchSets = spec.patchSets!.map((set, k) => patchSetResult(set, normalize(raw[k]!)));
    }
    if (path) {
      const before = known.size + sets.length;
      const raw = await runPathPatching(
        problem,
        path,
        pathSets,
        { execute, capture: CAPTURERS[mode] },
        {
          signal: opts.signal,
          onProgress: (done) => opts.onProgress?.({ done: nPairs * (before + done), total, sweep: PATH_PATCHING_SWEEP }),
        },
      );
      const cells = path.layers * model.cfg.nHeads;
      sweeps[PATH_PATCHING_SWEEP] = {
        shape: [path.layers, model.cfg.nHeads],
        axes: ['layer', 'head'],
        values: Array.from(raw.subarray(0, cells), normalize),
        receivers: path.receivers === RESID_FINAL ? [RESID_FINAL] : path.receivers.map(receiverName),
        ...(path.senders ? { senderSet: { senders: path.senders.map(senderName), value: normalize(raw[cells]!) } } : {}),
      };
    }
  } catch (e) {
    if (e instanceof CancelledError) return { status: 'cancelled', baselines, sweeps, nPos };
    throw e;
  }
  return { status: 'done', baselines, sweeps, nPos, ...(patchSets ? { patchSets } : {}) };
}

/** A patch set's entry in the result: its components in canonical form, its normalized value. */
export const patchSetResult = (set: PatchSetSpec, value: number): PatchSetResult => ({
  name: set.name,
  components: set.components.map((c) => componentName(parseComponent(c)!)),
  value,
});
