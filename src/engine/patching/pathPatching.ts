import { PATH_RECEIVER_PATTERN, PATH_SENDER_PATTERN, type PathPatchingSpec, RESID_FINAL } from '../../protocol/spec';
import { UserError } from '../../common/userError';
import { type BlockHook, blockHookName, hookInfo } from '../hooks';
import type { ModelConfig } from '../model/config';
import type { Tensor32 } from '../tensor';
import type { ExecuteOptions, Patch, PatchCapturer, PatchExecutor, PatchPart, PatchProblem } from './problem';

/**
 * Path patching (Wang et al. 2022), as ARENA's IOI exercises compute it. Stage 1: the run's prompts with
 * the senders' outputs (hook_z) written from the source and every other head's output frozen at the
 * run's own value, MLPs and norms recomputed. With the final residual stream as receiver, stage 1's
 * logits are the measurement (the senders' effect through MLPs only, no other head). With heads'
 * query, key or value inputs as receivers, stage 2 runs the prompts again with only those inputs taken
 * from stage 1, everything else recomputed: the effect through the receivers only. Both stages are
 * ordinary patches, so either executor runs them exactly.
 */

const Z: BlockHook = 'attn.hook_z';
const INPUT_HOOK = { q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v' } as const;

export interface PathReceiver {
  readonly layer: number;
  /** A query head for q, a key/value head for k and v. */
  readonly head: number;
  readonly input: keyof typeof INPUT_HOOK;
}

export interface PathSender {
  readonly layer: number;
  readonly head: number;
}

/** A spec's path patching checked against the model. */
export interface PathPlan {
  readonly receivers: readonly PathReceiver[] | typeof RESID_FINAL;
  /** The sweep's sender layers, 0 … layers − 1: those below the last receiver's (every layer for resid_final). */
  readonly layers: number;
  /** The spec's sender set, patched together. */
  readonly senders?: readonly PathSender[];
}

/** Canonical names, as the result lists them. */
export const receiverName = (r: PathReceiver): string => `L${r.layer}H${r.head}.${r.input}`;
export const senderName = (s: PathSender): string => `L${s.layer}H${s.head}`;

/** The spec's receivers and senders on this model; every name the model lacks is a UserError that says where it was written. */
export function planPathPatching(spec: PathPatchingSpec, cfg: ModelConfig): PathPlan {
  const layerCheck = (where: string, name: string, layer: number) => {
    if (layer >= cfg.nLayers) throw new UserError(`${where}: ${name} names layer ${layer}, but the model has layers 0…${cfg.nLayers - 1}`);
  };
  let receivers: PathPlan['receivers'];
  if (spec.receivers === RESID_FINAL) receivers = RESID_FINAL;
  else {
    if (!Array.isArray(spec.receivers) || spec.receivers.length === 0)
      throw new UserError(`path_patching.receivers must be "${RESID_FINAL}" or a list of heads' inputs such as ["L9H6.q"]`);
    receivers = spec.receivers.map((name, i) => {
      const where = `path_patching.receivers[${i}]`;
      const m = new RegExp(PATH_RECEIVER_PATTERN).exec(name);
      if (!m) throw new UserError(`${where} is ${JSON.stringify(name)}, not a receiver; ${RECEIVER_HELP}`);
      const r: PathReceiver = { layer: Number(m[1]), head: Number(m[2]), input: m[3] as PathReceiver['input'] };
      layerCheck(where, name, r.layer);
      const heads = hookInfo(cfg, INPUT_HOOK[r.input]).heads;
      if (r.head >= heads) {
        const kv = heads !== cfg.nHeads;
        throw new UserError(
          `${where}: ${name} names head ${r.head}, but the model has ${kv ? 'key/value ' : ''}heads 0…${heads - 1}${kv ? ` (on this grouped-query model .k and .v name key/value heads: query head h reads key/value head ⌊h / ${cfg.nHeads / heads}⌋)` : ''}`,
        );
      }
      return r;
    });
  }
  const layers = receivers === RESID_FINAL ? cfg.nLayers : Math.max(...receivers.map((r) => r.layer));
  if (layers === 0)
    throw new UserError(`path_patching.receivers are all in layer 0, which no head's output reaches; choose heads in layers 1…${cfg.nLayers - 1}, or "${RESID_FINAL}"`);
  const senders = spec.senders?.map((name, i) => {
    const where = `path_patching.senders[${i}]`;
    const m = new RegExp(PATH_SENDER_PATTERN).exec(name);
    if (!m) throw new UserError(`${where} is ${JSON.stringify(name)}, not a sender; a sender is a head's output, LxHy, e.g. "L5H1"`);
    const s: PathSender = { layer: Number(m[1]), head: Number(m[2]) };
    layerCheck(where, name, s.layer);
    if (s.head >= cfg.nHeads) throw new UserError(`${where}: ${name} names head ${s.head}, but the model has heads 0…${cfg.nHeads - 1}`);
    if (s.layer >= layers)
      throw new UserError(
        `${where}: ${name} is in layer ${s.layer}, but the receivers' last layer is ${layers}: a head's output reaches only later layers; choose senders in layers 0…${layers - 1}`,
      );
    return s;
  });
  return { receivers, layers, ...(senders ? { senders } : {}) };
}

const RECEIVER_HELP = `a receiver is a head's query, key or value input, LxHy.q, LxHy.k or LxHy.v (for k and v the head counts key/value heads), e.g. "L9H6.q"; or the whole spec's receivers are "${RESID_FINAL}" (the final residual stream)`;

/** Hooks a path patch reads and writes, for the caches the runs start from. */
export function pathPatchingHooks(plan: PathPlan): BlockHook[] {
  return [Z, ...(plan.receivers === RESID_FINAL ? [] : plan.receivers.map((r) => INPUT_HOOK[r.input]))];
}

/** The sweep's sender sets: every head of layers 0 … layers − 1, one at a time, in [layer, head] order; then the spec's set. */
export function senderSets(plan: PathPlan, cfg: ModelConfig): PathSender[][] {
  const sets: PathSender[][] = [];
  for (let layer = 0; layer < plan.layers; layer++) for (let head = 0; head < cfg.nHeads; head++) sets.push([{ layer, head }]);
  if (plan.senders) sets.push([...plan.senders]);
  return sets;
}

/**
 * Stage 1 as a patch: the senders from the source; from the first sender's layer up to `upTo`, every
 * other head at the run's own output (heads beside the first senders, in their layer, cannot have moved).
 */
function senderPatch(problem: PatchProblem, senders: readonly PathSender[], upTo: number): Patch {
  const first = Math.min(...senders.map((s) => s.layer));
  const parts: PatchPart[] = [];
  for (let layer = first; layer <= upTo; layer++) {
    const here = senders.filter((s) => s.layer === layer);
    const run = problem.runCache.get(blockHookName(layer, Z))!;
    const slot = { layer, hook: Z, layout: 'head' as const };
    if (layer === first) parts.push(...here.map((s) => ({ ...slot, head: s.head })));
    else parts.push({ ...slot, source: here.length === 0 ? run : mixHeads(run, problem.sourceCache.get(blockHookName(layer, Z))!, here) });
  }
  return parts;
}

/** The run's hook_z with the senders' heads taken from the source (a sender set spanning layers). */
function mixHeads(run: Tensor32, source: Tensor32, senders: readonly PathSender[]): Tensor32 {
  const [, , H, E] = run.shape as [number, number, number, number];
  const data = Float32Array.from(run.data);
  for (let cell = 0; cell < data.length / (H * E); cell++) {
    for (const s of senders) data.set(source.data.subarray((cell * H + s.head) * E, (cell * H + s.head + 1) * E), (cell * H + s.head) * E);
  }
  return { shape: run.shape, data };
}

/** Stage 2 as a patch: the receivers' inputs from stage 1's run. */
function receiverPatch(receivers: readonly PathReceiver[], stage1: ReadonlyMap<string, Tensor32>): Patch {
  return receivers.map((r) => {
    const hook = INPUT_HOOK[r.input];
    return { layer: r.layer, hook, layout: 'head' as const, head: r.head, source: stage1.get(blockHookName(r.layer, hook))! };
  });
}

/** Patched runs per sender set: 1 with the final residual stream as receiver, 2 with heads' inputs. */
export const runsPerSet = (plan: PathPlan): number => (plan.receivers === RESID_FINAL ? 1 : 2);

/**
 * The raw metric of each sender set (senderSets' order). Stage 1 runs keep the receivers' inputs of a
 * group of sets at a time, as many as the memory budget holds. `onProgress` counts patched runs.
 */
export async function runPathPatching(
  problem: PatchProblem,
  plan: PathPlan,
  sets: readonly PathSender[][],
  executors: { execute: PatchExecutor; capture: PatchCapturer },
  opts: ExecuteOptions,
): Promise<Float64Array> {
  const cfg = problem.model.cfg;
  const receivers = plan.receivers;
  if (receivers === RESID_FINAL)
    return executors.execute(
      problem,
      sets.map((s) => senderPatch(problem, s, cfg.nLayers - 1)),
      opts,
    );
  const capture = new Map<number, BlockHook[]>();
  for (const r of receivers) {
    const hooks = capture.get(r.layer) ?? [];
    if (!hooks.includes(INPUT_HOOK[r.input])) hooks.push(INPUT_HOOK[r.input]);
    capture.set(r.layer, hooks);
  }
  const bytesPerSet = [...capture].reduce((a, [l, hooks]) => a + hooks.reduce((b, h) => b + 4 * problem.runCache.get(blockHookName(l, h))!.data.length, 0), 0);
  const group = Math.max(1, Math.floor(problem.memoryBudget / bytesPerSet));
  const out = new Float64Array(sets.length);
  for (let g = 0; g < sets.length; g += group) {
    const batch = sets.slice(g, g + group);
    const progress = (stage: number) => (done: number) => opts.onProgress?.(2 * g + stage * batch.length + done);
    const stage1 = await executors.capture(
      problem,
      batch.map((s) => senderPatch(problem, s, plan.layers - 1)),
      capture,
      { ...opts, onProgress: progress(0) },
    );
    const values = await executors.execute(
      problem,
      stage1.map((c) => receiverPatch(receivers, c)),
      { ...opts, onProgress: progress(1) },
    );
    out.set(values, g);
  }
  return out;
}
