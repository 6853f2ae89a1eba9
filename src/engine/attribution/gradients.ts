import { appendBackward } from '../graph/backward';
import { writeBlockGraph } from '../graph/blockGraph';
import { writeEmbedGraph } from '../graph/embedGraph';
import { GraphBuilder } from '../graph/graphBuilder';
import { hookDims, hookOutput, type HookVariant } from '../graph/hookPoint';
import { DataType } from '../graph/onnxProto';
import { writeUnembedGraph } from '../graph/unembedGraph';
import * as ort from 'onnxruntime-node';
import type { HookedTransformer } from '../hookedTransformer';
import { type BlockHook, blockHookName, blockHooks, globalHooks, type HookInfo } from '../hooks';
import type { ModelConfig } from '../model/config';
import type { Tensor32 } from '../tensor';
import { throwIfCancelled } from '../cancel';
import type { Metric } from '../patching/metrics';

export const gradOutput = (hook: string): string => `grad:${hook}`;
const SEED = 'seed';

/**
 * A graph (embed, block or unembed) that recomputes its forward pass from its input and runs the
 * backward pass from `seedValue`'s gradient (the graph input 'seed'), returning the gradient of each hook
 * in `grads` (and of the graph's input), the forward value of each hook in `acts`, and nothing else.
 * Recomputing each block from its input, rather than keeping every intermediate of the forward run, is
 * the checkpointing that keeps a backward pass's memory at one block's activations.
 */
function gradientGraph(
  write: (g: GraphBuilder, v: HookVariant) => void,
  hooks: ReadonlyMap<string, HookInfo>,
  want: { readonly grads: readonly string[]; readonly acts?: readonly string[] },
  seedValue: string,
  seedShape: (number | string)[],
  input?: string,
): Uint8Array {
  const g = new GraphBuilder();
  const acts = want.acts ?? [];
  write(g, { capture: [...new Set([...want.grads, ...acts])], patch: [] });
  // A captured hook's value is the input of the Identity that names its output.
  const valueOf = new Map(
    g
      .contents()
      .nodes.filter((n) => n.opType === 'Identity' && n.outputs[0]!.startsWith('hook:'))
      .map((n) => [n.outputs[0]!, n.inputs[0]!]),
  );
  const values = want.grads.map((h) => valueOf.get(hookOutput(h)) ?? hookOutput(h));
  const seed = g.input(SEED, DataType.FLOAT, seedShape);
  const grads = appendBackward(g, new Map([[seedValue, seed]]), input ? [input, ...values] : values);
  if (input) g.output(gradOutput(input), grads.get(input)!, DataType.FLOAT, ['batch', 'pos', 'd']);
  want.grads.forEach((h, i) => g.output(gradOutput(h), grads.get(values[i]!)!, DataType.FLOAT, hookDims(hooks.get(h)!).shape));
  return g.build('gradient', new Set([...(input ? [gradOutput(input)] : []), ...want.grads.map(gradOutput), ...acts.map(hookOutput)]));
}

/** The session key of a gradient graph: one compiled graph per set of hooks read. */
const gradientKey = (want: { readonly grads: readonly string[]; readonly acts?: readonly string[] }, extra = ''): string =>
  `gradient|g=${[...want.grads].sort().join(',')}|a=${[...(want.acts ?? [])].sort().join(',')}${extra}`;

/** The block's hooks that exist in a full (unpatched, ungathered) block: all of them. */
const blockVariant = (v: HookVariant) => ({ ...v, withPast: false, gather: false });

/** A forward run's cache and logits, from which a backward pass can start without running it again. */
export interface ForwardRun {
  /** Holds every block's hook_resid_pre and the last block's hook_resid_post. */
  readonly cache: ReadonlyMap<string, Tensor32>;
  /** The logits at the metric's rows, [rows, dVocab]. */
  readonly logits: Float32Array;
}

/**
 * One metric's gradient with respect to every hook point of a run, a block at a time from the top.
 * `start` takes the forward pass (run here, or one already run with the right captures) and runs the
 * unembedding's backward pass; `block` then runs one block's backward pass from the gradient of its
 * output, so callers can consume a layer's gradients and drop them (attribution), or restart below a
 * layer with another gradient (GradDrop).
 */
export class MetricBackward {
  private constructor(
    readonly model: HookedTransformer,
    private readonly ids: readonly (readonly number[])[],
    private readonly residPre: Tensor32[],
    private readonly final: Tensor32,
    private readonly metric: Metric,
    private readonly logitRows: readonly number[],
    private readonly logits: Float32Array,
    /** The raw metric of the run. */
    readonly value: number,
    /** dM/d(the last block's output). */
    readonly gradFinal: Tensor32,
  ) {}

  static async start(
    model: HookedTransformer,
    ids: readonly (readonly number[])[],
    metric: Metric,
    logitRows: readonly number[],
    opts: { signal?: AbortSignal; run?: ForwardRun } = {},
  ): Promise<MetricBackward> {
    const cfg = model.cfg;
    const L = cfg.nLayers;
    const capture = [...Array.from({ length: L }, (_, l) => blockHookName(l, 'hook_resid_pre')), blockHookName(L - 1, 'hook_resid_post')];
    let run = opts.run;
    if (!run) {
      const r = await model.forward(ids, { capture, logitRows, signal: opts.signal });
      run = { cache: r.cache, logits: r.logits.data };
    }
    const logits = run.logits;
    const residPre = Array.from({ length: L }, (_, l) => run.cache.get(blockHookName(l, 'hook_resid_pre'))!);
    const final = run.cache.get(blockHookName(L - 1, 'hook_resid_post'))!;
    const gradFinal = (await unembedBackward(model, final, metric, logits, logitRows, []))[gradOutput('resid')]!;
    return new MetricBackward(model, ids, residPre, final, metric, logitRows, logits, metric.raw(logits), gradFinal);
  }

  /** Block `layer`'s input in this run. */
  input(layer: number): Tensor32 {
    return this.residPre[layer]!;
  }

  /**
   * Block `layer`'s backward pass from dM/d(its output): the gradient of each hook in `grads`, the
   * run's value of each hook in `acts`, and dM/d(its input).
   */
  async block(layer: number, gradOutputOfBlock: Tensor32, want: { grads: readonly BlockHook[]; acts?: readonly BlockHook[] }, signal?: AbortSignal): Promise<BlockGradients> {
    throwIfCancelled(signal);
    const cfg = this.model.cfg;
    const hooks = blockHooks(cfg);
    const fetches = [gradOutput('resid_pre'), ...want.grads.map(gradOutput), ...(want.acts ?? []).map(hookOutput)];
    const out = await this.model.runGraphWith(
      'block',
      layer,
      gradientKey(want),
      () => gradientGraph((g, v) => writeBlockGraph(g, cfg, blockVariant(v)), hooks, want, 'resid_post', ['batch', 'pos', cfg.dModel], 'resid_pre'),
      { resid_pre: this.residPre[layer]!, [SEED]: gradOutputOfBlock },
      [...new Set(fetches)],
      2,
    );
    return {
      gradInput: out[gradOutput('resid_pre')]!,
      grads: new Map(want.grads.map((h) => [h, out[gradOutput(h)]!])),
      acts: new Map((want.acts ?? []).map((h) => [h, out[hookOutput(h)]!])),
    };
  }

  /** dM/d(the embedding's hooks), from dM/d(block 0's input). */
  async embed(gradResid: Tensor32): Promise<Map<string, Tensor32>> {
    const cfg = this.model.cfg;
    const hooks = new Map([...globalHooks(cfg)].filter(([, info]) => info.graph === 'embed'));
    const P = this.ids[0]!.length;
    const want = { grads: [...hooks.keys()] };
    const out = await this.model.runGraphWith(
      'embed',
      0,
      gradientKey(want),
      () => gradientGraph((g, v) => writeEmbedGraph(g, cfg, v), hooks, want, 'resid', ['batch', 'pos', cfg.dModel]),
      { ids: int64(this.ids.flat(), [this.ids.length, P]), [SEED]: gradResid },
      want.grads.map(gradOutput),
      1,
    );
    return new Map(want.grads.map((h) => [h, out[gradOutput(h)]!]));
  }

  /** Every hook's gradient, by full name: the whole backward pass at once (tests and small models). */
  async all(signal?: AbortSignal): Promise<Map<string, Tensor32>> {
    const cfg = this.model.cfg;
    const finalHooks = [...unembedHooks(cfg).keys()];
    const final = await unembedBackward(this.model, this.final, this.metric, this.logits, this.logitRows, finalHooks);
    const all = new Map<string, Tensor32>(finalHooks.map((h) => [h, final[gradOutput(h)]!]));
    const names = [...blockHooks(cfg).keys()];
    let grad = this.gradFinal;
    for (let l = cfg.nLayers - 1; l >= 0; l--) {
      const r = await this.block(l, grad, { grads: names }, signal);
      for (const [h, t] of r.grads) all.set(blockHookName(l, h), t);
      grad = r.gradInput;
    }
    for (const [h, t] of await this.embed(grad)) all.set(h, t);
    return all;
  }
}

/**
 * The unembedding's backward pass from the metric's gradient: dM/d(the last block's output) and of the
 * ln_final hooks in `hooks`. A logit difference reads two logits a row, so its gradient needs two columns
 * of the unembedding rather than all 50,257.
 */
async function unembedBackward(
  model: HookedTransformer,
  final: Tensor32,
  metric: Metric,
  logits: Float32Array,
  rows: readonly number[],
  hooks: readonly string[],
): Promise<Record<string, Tensor32>> {
  const cfg = model.cfg;
  const columns = metric.columns !== undefined && hooks.length === 0;
  const n = rows.length;
  const want = { grads: hooks };
  const C = metric.columnsPerRow;
  const feeds: Record<string, Tensor32 | ort.Tensor> = { resid: final, rows: int64(rows, [n]) };
  if (columns) {
    const cols: number[] = [];
    metric.positions.forEach((positions, i) => positions.forEach(() => cols.push(...metric.columns!.subarray(i * C, (i + 1) * C))));
    feeds.cols = int64(cols, [n, C]);
    feeds[SEED] = { shape: [n, C], data: metric.gradientColumns() };
  } else feeds[SEED] = { shape: [n, cfg.dVocab], data: metric.gradient(logits) };
  return model.runGraphWith(
    'unembed',
    0,
    gradientKey(want, columns ? '|columns' : ''),
    () => gradientGraph((g, v) => writeUnembedGraph(g, cfg, { ...v, columns }), unembedHooks(cfg), want, 'logits', ['rows', columns ? 'cols' : cfg.dVocab], 'resid'),
    feeds,
    [gradOutput('resid'), ...hooks.map(gradOutput)],
    2,
  );
}

export interface BlockGradients {
  readonly gradInput: Tensor32;
  readonly grads: Map<BlockHook, Tensor32>;
  readonly acts: Map<BlockHook, Tensor32>;
}

function unembedHooks(cfg: ModelConfig): Map<string, HookInfo> {
  return new Map([...globalHooks(cfg)].filter(([, info]) => info.graph === 'unembed'));
}

const int64 = (values: readonly number[], dims: number[]): ort.Tensor =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
