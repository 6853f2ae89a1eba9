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
 * backward pass from `seedValue`'s gradient (the graph input 'seed'), returning the gradient of every
 * hook point in `hooks` and of the graph's input. Recomputing each block from its input, rather than
 * keeping every intermediate of the forward run, is the checkpointing that keeps a backward pass's
 * memory at one block's activations.
 */
function gradientGraph(write: (g: GraphBuilder, v: HookVariant) => void, hooks: ReadonlyMap<string, HookInfo>, seedValue: string, seedShape: (number | string)[], input?: string): Uint8Array {
  const g = new GraphBuilder();
  const names = [...hooks.keys()];
  write(g, { capture: names, patch: [] });
  // A captured hook's value is the input of the Identity that names its output.
  const valueOf = new Map(g.contents().nodes.filter((n) => n.opType === 'Identity' && n.outputs[0]!.startsWith('hook:')).map((n) => [n.outputs[0]!, n.inputs[0]!]));
  const values = names.map((h) => valueOf.get(hookOutput(h)) ?? hookOutput(h));
  const seed = g.input(SEED, DataType.FLOAT, seedShape);
  const grads = appendBackward(g, new Map([[seedValue, seed]]), input ? [input, ...values] : values);
  if (input) g.output(gradOutput(input), grads.get(input)!, DataType.FLOAT, ['batch', 'pos', 'd']);
  names.forEach((h, i) => g.output(gradOutput(h), grads.get(values[i]!)!, DataType.FLOAT, hookDims(hooks.get(h)!).shape));
  return g.build('gradient');
}

/** The block's hooks that exist in a full (unpatched, ungathered) block: all of them. */
const blockVariant = (v: HookVariant) => ({ ...v, withPast: false, gather: false });

/**
 * One metric's gradient with respect to every hook point of a run, a block at a time from the top.
 * `start` runs the forward pass (keeping each block's input) and the unembedding's backward pass;
 * `block` then runs one block's backward pass from the gradient of its output, so callers can consume
 * a layer's gradients and drop them (attribution), or restart below a layer with another gradient
 * (GradDrop).
 */
export class MetricBackward {
  private constructor(
    readonly model: HookedTransformer,
    private readonly ids: readonly (readonly number[])[],
    private readonly residPre: Tensor32[],
    /** The raw metric of the run. */
    readonly value: number,
    /** dM/d(the last block's output). */
    readonly gradFinal: Tensor32,
    /** dM/d(ln_final's hooks). */
    readonly finalGrads: Map<string, Tensor32>,
  ) {}

  static async start(model: HookedTransformer, ids: readonly (readonly number[])[], metric: Metric, logitRows: readonly number[], signal?: AbortSignal): Promise<MetricBackward> {
    const cfg = model.cfg;
    const L = cfg.nLayers;
    const capture = [...Array.from({ length: L }, (_, l) => blockHookName(l, 'hook_resid_pre')), blockHookName(L - 1, 'hook_resid_post')];
    const run = await model.forward(ids, { capture, logitRows, signal });
    const residPre = Array.from({ length: L }, (_, l) => run.cache.get(blockHookName(l, 'hook_resid_pre'))!);
    const final = run.cache.get(blockHookName(L - 1, 'hook_resid_post'))!;
    const hooks = unembedHooks(cfg);
    const out = await model.runGraphWith(
      'unembed',
      0,
      'gradient',
      () => gradientGraph((g, v) => writeUnembedGraph(g, cfg, v), hooks, 'logits', ['rows', cfg.dVocab], 'resid'),
      { resid: final, rows: int64(logitRows, [logitRows.length]), [SEED]: { shape: [logitRows.length, cfg.dVocab], data: metric.gradient(run.logits.data) } },
      [gradOutput('resid'), ...[...hooks.keys()].map(gradOutput)],
      2,
    );
    const finalGrads = new Map([...hooks.keys()].map((h) => [h, out[gradOutput(h)]!]));
    return new MetricBackward(model, ids, residPre, metric.raw(run.logits.data), out[gradOutput('resid')]!, finalGrads);
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
      'gradient',
      () => gradientGraph((g, v) => writeBlockGraph(g, cfg, blockVariant(v)), hooks, 'resid_post', ['batch', 'pos', cfg.dModel], 'resid_pre'),
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
    const out = await this.model.runGraphWith(
      'embed',
      0,
      'gradient',
      () => gradientGraph((g, v) => writeEmbedGraph(g, cfg, v), hooks, 'resid', ['batch', 'pos', cfg.dModel]),
      { ids: int64(this.ids.flat(), [this.ids.length, P]), [SEED]: gradResid },
      [...hooks.keys()].map(gradOutput),
      1,
    );
    return new Map([...hooks.keys()].map((h) => [h, out[gradOutput(h)]!]));
  }

  /** Every hook's gradient, by full name: the whole backward pass at once (tests and small models). */
  async all(signal?: AbortSignal): Promise<Map<string, Tensor32>> {
    const cfg = this.model.cfg;
    const all = new Map<string, Tensor32>(this.finalGrads);
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

export interface BlockGradients {
  readonly gradInput: Tensor32;
  readonly grads: Map<BlockHook, Tensor32>;
  readonly acts: Map<BlockHook, Tensor32>;
}

function unembedHooks(cfg: ModelConfig): Map<string, HookInfo> {
  return new Map([...globalHooks(cfg)].filter(([, info]) => info.graph === 'unembed'));
}

const int64 = (values: readonly number[], dims: number[]): ort.Tensor => new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
