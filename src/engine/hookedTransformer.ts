import { createHash } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import { type BlockVariant, buildBlockGraph } from './graph/blockGraph';
import { buildEmbedGraph } from './graph/embedGraph';
import { hookOutput, maskInput, patchInput, variantKey } from './graph/hookPoint';
import { buildUnembedGraph } from './graph/unembedGraph';
import { allHookNames, type BlockHook, hookMaskGraphDims, hookMaskShape, hookShape, parseHookName } from './hooks';
import { isLocalLayer, type ModelConfig } from './model/config';
import type { TextTokenizer } from './model/tokenizer';
import { blockWeightShapes, type ModelWeights } from './model/weights';
import type { Runtime } from './runtime';
import { numel, type Tensor32 } from './tensor';
import { UserError } from '../common/userError';
import { throwIfCancelled } from './cancel';

/** Overwrites a hook's value wherever `mask` (one byte per cell of hookMaskShape) is 1. */
export interface HookPatch {
  readonly source: Tensor32;
  readonly mask: Uint8Array;
}

export interface ForwardOptions {
  /** Full hook names to return, or 'all'. */
  readonly capture?: readonly string[] | 'all';
  /** Patches by full hook name. */
  readonly patches?: ReadonlyMap<string, HookPatch>;
  /** Flat indices (row * pos + p) at which to compute logits; all positions when absent. */
  readonly logitRows?: readonly number[];
  /** Checked between graphs, so a cancel lands within one block's time. */
  readonly signal?: AbortSignal;
}

export interface ForwardResult {
  /** [batch, pos, vocab], or [rows, vocab] when logitRows was given. */
  readonly logits: Tensor32;
  readonly cache: Map<string, Tensor32>;
}

const f32 = (t: Tensor32): ort.Tensor => new ort.Tensor('float32', t.data, t.shape as number[]);
const toTensor32 = (t: ort.Tensor): Tensor32 => ({ shape: [...t.dims], data: t.data as Float32Array });

/**
 * A transformer of any family the architecture seam reads, whose every TransformerLens hook point can be
 * read and overwritten. The model is evaluated as embed -> block x L -> unembed sessions; weights are fed
 * as inputs, so one compiled block serves all layers and no weight is copied.
 */
export class HookedTransformer {
  private readonly blockFeeds: Record<string, ort.Tensor>[];
  private readonly embedFeeds: Record<string, ort.Tensor>;
  private readonly unembedFeeds: Record<string, ort.Tensor>;
  /** Rotary cos/sin tables cover positions [0, ropePositions); grown (and shared by all layers) on demand. */
  private ropePositions = 0;
  /** Floating-point operations of the matrix products run so far (for benchmarks). */
  flops = 0;
  /** Graphs depend on the model's shapes, so sessions are shared only between models of one shape. */
  private readonly graphKey: string;

  constructor(
    readonly cfg: ModelConfig,
    weights: ModelWeights,
    readonly runtime: Runtime,
    readonly tokenizer?: TextTokenizer,
  ) {
    this.graphKey = JSON.stringify(cfg);
    const names = blockWeightShapes(cfg).map(([n]) => n);
    const wpe = weights.wpe ? f32(weights.wpe) : undefined;
    this.blockFeeds = weights.blocks.map((b, l) => {
      const feeds: Record<string, ort.Tensor> = Object.fromEntries(names.map((n) => [n, f32(b[n]!)]));
      feeds.attn_scale = new ort.Tensor('float32', Float32Array.of(cfg.attnScale[l]!), []);
      feeds.window = new ort.Tensor('int64', BigInt64Array.of(BigInt(cfg.window[l]!)), []);
      if (cfg.positional === 'shortformer') feeds.wpe = wpe!;
      return feeds;
    });
    this.embedFeeds = { wte: f32(weights.wte), ...(wpe && cfg.positional !== 'rotary' ? { wpe } : {}) };
    this.unembedFeeds = {
      lnfW: f32(weights.lnfW),
      ...(weights.lnfB ? { lnfB: f32(weights.lnfB) } : {}),
      unembed: f32(weights.unembed),
      ...(weights.bU ? { bU: f32(weights.bU) } : {}),
    };
  }

  /**
   * sha256 of the config and every weight as the graphs read it (float32): which model this is, wherever
   * it was loaded from (a shard of a split run records it, and merge refuses shards of different models).
   */
  weightsDigest(): string {
    const hash = createHash('sha256').update(this.graphKey);
    const add = (feeds: Record<string, ort.Tensor>, names: readonly string[]) => {
      for (const name of names) {
        const data = feeds[name]?.data as Float32Array | undefined;
        if (data) hash.update(name).update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      }
    };
    const blockNames = blockWeightShapes(this.cfg).map(([n]) => n);
    for (const feeds of this.blockFeeds) add(feeds, blockNames);
    add(this.embedFeeds, ['wte', 'wpe']);
    add(this.unembedFeeds, ['lnfW', 'lnfB', 'unembed', 'bU']);
    return hash.digest('hex');
  }

  /**
   * Makes the rotary tables cover `positions`. Angles are computed in float64 (position · inverse
   * frequency) and rounded once, so long prompts lose no precision to float32 angle arithmetic.
   */
  private ensureRope(positions: number): void {
    const rot = this.cfg.rotary;
    if (!rot || positions <= this.ropePositions) return;
    const n = Math.min(this.cfg.nCtx, Math.max(64, 2 ** Math.ceil(Math.log2(positions))));
    const table = (invFreq: readonly number[]) => {
      const half = invFreq.length;
      const cos = new Float32Array(n * half);
      const sin = new Float32Array(n * half);
      for (let p = 0; p < n; p++) {
        for (let i = 0; i < half; i++) {
          cos[p * half + i] = Math.cos(p * invFreq[i]!);
          sin[p * half + i] = Math.sin(p * invFreq[i]!);
        }
      }
      return { cos: new ort.Tensor('float32', cos, [n, half]), sin: new ort.Tensor('float32', sin, [n, half]) };
    };
    const global = table(rot.invFreq);
    const local = rot.localInvFreq ? table(rot.localInvFreq) : global;
    this.blockFeeds.forEach((feeds, l) => {
      const t = isLocalLayer(this.cfg, l) ? local : global;
      feeds.rope_cos = t.cos;
      feeds.rope_sin = t.sin;
    });
    this.ropePositions = n;
  }

  /** Checks token ids before they reach a graph, where a bad id would be an opaque runtime failure. */
  validateIds(ids: readonly (readonly number[])[]): void {
    if (ids.length === 0) throw new UserError('no prompts to run');
    const len = ids[0]!.length;
    if (len === 0) throw new UserError('a prompt has no tokens');
    if (len > this.cfg.nCtx) {
      throw new UserError(`a prompt has ${len} tokens but the model's context is ${this.cfg.nCtx}; shorten the prompt`);
    }
    ids.forEach((row, r) => {
      if (row.length !== len) throw new UserError(`prompt rows must have equal lengths: row 0 has ${len} tokens, row ${r} has ${row.length}`);
      row.forEach((id, p) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.cfg.dVocab) {
          throw new UserError(`token id ${id} at row ${r}, position ${p} is outside the vocabulary [0, ${this.cfg.dVocab})`);
        }
      });
    });
  }

  async runWithCache(ids: readonly (readonly number[])[]): Promise<ForwardResult> {
    return this.forward(ids, { capture: 'all' });
  }

  async forward(ids: readonly (readonly number[])[], opts: ForwardOptions = {}): Promise<ForwardResult> {
    this.validateIds(ids);
    const B = ids.length;
    const P = ids[0]!.length;
    const capture = opts.capture === 'all' ? allHookNames(this.cfg) : (opts.capture ?? []);
    const patches = opts.patches ?? new Map<string, HookPatch>();
    const byScope = this.groupHooks(capture, patches, B, P);
    const cache = new Map<string, Tensor32>();
    const scope = (name: string): ScopeHooks => byScope.get(name) ?? { capture: [], patch: new Map() };
    const collect = (s: ScopeHooks, out: Record<string, ort.Tensor>, prefix: string) => {
      for (const local of s.capture) cache.set(prefix + local, toTensor32(out[hookOutput(local)]!));
    };

    this.ensureRope(P);
    const idData = new BigInt64Array(B * P);
    ids.forEach((row, r) => row.forEach((id, p) => (idData[r * P + p] = BigInt(id))));
    const embedHooks = scope('embed');
    const embed = await this.runGraph('embed', embedHooks, { ...this.embedFeeds, ids: new ort.Tensor('int64', idData, [B, P]) });
    collect(embedHooks, embed, '');
    let resid = embed.resid!;
    for (let l = 0; l < this.cfg.nLayers; l++) {
      throwIfCancelled(opts.signal);
      const hooks = scope(`block${l}`);
      const out = await this.runGraph('block', hooks, { ...this.blockFeeds[l]!, resid_pre: resid });
      collect(hooks, out, `blocks.${l}.`);
      resid = out.resid_post!;
    }
    const rows = opts.logitRows ?? Array.from({ length: B * P }, (_, i) => i);
    const unembedHooks = byScope.get('unembed');
    let logits: Tensor32;
    if (unembedHooks) {
      const un = await this.runGraph('unembed', unembedHooks, { ...this.unembedFeeds, resid, rows: int64(rows, [rows.length]) });
      collect(unembedHooks, un, '');
      logits = toTensor32(un.logits!);
    } else {
      logits = await this.logitsAt(toTensor32(resid), rows);
    }
    return { logits: opts.logitRows ? logits : { shape: [B, P, this.cfg.dVocab], data: logits.data }, cache };
  }

  /**
   * Runs block `layer` on a suffix of positions. `past` holds the keys and values ([pairs, prefix,
   * kv_head, d_head]) of the positions before the suffix, which every copy of the pairs in `resid`
   * ([copies * pairs, suffix, d_model]) attends to. Patch masks are given
   * with their graph dims (attention masks are [rows, head, suffix, prefix + suffix]). With `outRows`
   * (flat row * suffix + s indices) the output is [1, outRows.length, d_model]: only those positions
   * go through the output projection and the MLP, and patches of gatheredHooks are laid out over them.
   */
  async blockSuffix(
    layer: number,
    resid: Tensor32,
    past: { k: Tensor32; v: Tensor32 } | undefined,
    patches: ReadonlyMap<BlockHook, { source: Tensor32; mask: Uint8Array; maskDims: number[] }>,
    outRows?: Int32Array,
  ): Promise<Tensor32> {
    return (await this.blockSuffixCapture(layer, resid, past, patches, { outRows })).output;
  }

  /**
   * blockSuffix with more control: `capture` returns those hooks' values (hooks before the gather:
   * [rows, suffix, ...], after any patch); `runQkv` projects only the tokens in `rows` (flat row * suffix
   * + s) to queries, keys and values and takes every other token's from the run's own (`q`, `k`, `v`:
   * [pairs, suffix, heads, d_head], the hooks' values), for tokens whose input is still the run's.
   */
  async blockSuffixCapture(
    layer: number,
    resid: Tensor32,
    past: { k: Tensor32; v: Tensor32 } | undefined,
    patches: ReadonlyMap<BlockHook, { source: Tensor32; mask: Uint8Array; maskDims: number[] }>,
    opts: { outRows?: Int32Array; capture?: readonly BlockHook[]; runQkv?: { rows: Int32Array; q: Tensor32; k: Tensor32; v: Tensor32 } },
  ): Promise<{ output: Tensor32; captured: Map<BlockHook, Tensor32> }> {
    const { outRows, capture = [], runQkv } = opts;
    this.ensureRope(resid.shape[1]! + (past?.k.shape[1] ?? 0));
    const patch = new Map<string, PatchFeed>();
    for (const [hook, p] of patches) patch.set(hook, { source: f32(p.source), mask: new ort.Tensor('bool', p.mask, p.maskDims) });
    const feeds: Record<string, ort.Tensor> = { ...this.blockFeeds[layer]!, resid_pre: f32(resid) };
    if (past) {
      feeds.past_k = f32(past.k);
      feeds.past_v = f32(past.v);
    }
    if (outRows) feeds.out_rows = int64(outRows, [outRows.length]);
    if (runQkv) {
      feeds.qkv_rows = int64(runQkv.rows, [runQkv.rows.length]);
      for (const name of ['q', 'k', 'v'] as const) {
        const [pairs, pos, heads, dHead] = runQkv[name].shape as [number, number, number, number];
        feeds[`run_${name}`] = new ort.Tensor('float32', runQkv[name].data, [pairs, pos, heads * dHead]);
      }
    }
    const variant = { capture: [...capture], patch, withPast: past !== undefined, gather: outRows !== undefined, qkvRows: feeds.qkv_rows !== undefined };
    const out = await this.runGraph('block', variant, feeds);
    return { output: toTensor32(out.resid_post!), captured: new Map(capture.map((h) => [h, toTensor32(out[hookOutput(h)]!)])) };
  }

  /**
   * Chosen logits only: for each flat index in `rows`, the logits of the `perRow` tokens in `cols`
   * (row-major [rows.length, perRow]). Soft-capping and the unembedding bias apply as in the full row.
   */
  async logitColumns(resid: Tensor32, rows: readonly number[], cols: Int32Array, perRow: number): Promise<Float32Array> {
    const none = { capture: [], patch: new Map<string, PatchFeed>(), columns: true };
    const out = await this.runGraph('unembed', none, { ...this.unembedFeeds, resid: f32(resid), rows: int64(rows, [rows.length]), cols: int64(cols, [rows.length, perRow]) });
    return out.logits!.data as Float32Array;
  }

  /**
   * Logits [rows.length, vocab] at flat indices (row * pos + p) of a residual stream [batch, pos, d_model].
   * Computed in chunks written into one array: the runtime's own output buffer would otherwise double
   * the peak memory of a full batch of logits (150 MB for 16 x 47 tokens of GPT-2).
   */
  async logitsAt(resid: Tensor32, rows: readonly number[]): Promise<Tensor32> {
    const V = this.cfg.dVocab;
    const none = { capture: [], patch: new Map<string, PatchFeed>() };
    const chunk = Math.max(1, Math.floor(LOGIT_CHUNK_BYTES / (4 * V)));
    const data = new Float32Array(rows.length * V);
    const residTensor = f32(resid);
    for (let start = 0; start < rows.length; start += chunk) {
      const part = rows.slice(start, start + chunk);
      const out = await this.runGraph('unembed', none, { ...this.unembedFeeds, resid: residTensor, rows: int64(part, [part.length]) });
      data.set(out.logits!.data as Float32Array, start * V);
    }
    return { shape: [rows.length, V], data };
  }

  /**
   * Runs a graph other modules write from one of the three (attribution's backward passes), with the
   * weights of `layer` (or the embedding's or unembedding's) fed like the model's own graphs. `key` names
   * the variant; `flopsFactor` scales the forward's FLOP count (a forward plus its backward: 2).
   */
  async runGraphWith(
    kind: 'embed' | 'block' | 'unembed',
    layer: number,
    key: string,
    build: () => Uint8Array,
    feeds: Record<string, Tensor32 | ort.Tensor>,
    fetches: readonly string[],
    flopsFactor = 1,
  ): Promise<Record<string, Tensor32>> {
    const given: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) given[name] = t instanceof ort.Tensor ? t : f32(t as Tensor32);
    if (kind === 'block') this.ensureRope(given.resid_pre!.dims[1] as number);
    const base = kind === 'block' ? this.blockFeeds[layer]! : kind === 'embed' ? this.embedFeeds : this.unembedFeeds;
    const all: Record<string, ort.Tensor> = { ...base, ...given };
    const session = await this.runtime.session(`${this.graphKey}|${kind}|${key}`, build);
    this.flops += flopsFactor * this.graphFlops(kind, all);
    const out = await session.run(all, [...fetches]);
    return Object.fromEntries(fetches.map((name) => [name, toTensor32(out[name]!)]));
  }

  /** Splits hooks by the graph that owns them, checks every patch's shape, and prepares its feeds. */
  private groupHooks(capture: readonly string[], patches: ReadonlyMap<string, HookPatch>, B: number, P: number): Map<string, ScopeHooks> {
    const groups = new Map<string, ScopeHooks>();
    const locate = (name: string): { scope: ScopeHooks; local: BlockHook } => {
      const ref = parseHookName(name, this.cfg);
      if (!ref) throw new Error(`unknown hook point '${name}'`);
      const key = ref.kind === 'block' ? `block${ref.layer}` : ref.graph;
      let scope = groups.get(key);
      if (!scope) groups.set(key, (scope = { capture: [], patch: new Map() }));
      return { scope, local: ref.hook };
    };
    for (const name of capture) {
      const { scope, local } = locate(name);
      scope.capture.push(local);
    }
    for (const [name, p] of patches) {
      const { scope, local } = locate(name);
      const want = hookShape(this.cfg, local, B, P);
      if (p.source.shape.join() !== want.join()) throw new Error(`patch for ${name} has shape [${p.source.shape}], expected [${want}]`);
      const maskShape = hookMaskShape(this.cfg, local, B, P);
      if (p.mask.length !== numel(maskShape)) throw new Error(`patch mask for ${name} has ${p.mask.length} cells, expected ${numel(maskShape)}`);
      scope.patch.set(local, { source: f32(p.source), mask: new ort.Tensor('bool', p.mask, hookMaskGraphDims(this.cfg, local, B, P)) });
    }
    return groups;
  }

  private async runGraph(
    kind: 'embed' | 'block' | 'unembed',
    hooks: ScopeHooks & { withPast?: boolean; gather?: boolean; qkvRows?: boolean; columns?: boolean },
    feeds: Record<string, ort.Tensor>,
  ): Promise<Record<string, ort.Tensor>> {
    const variant = {
      capture: hooks.capture,
      patch: [...hooks.patch.keys()],
      withPast: hooks.withPast ?? false,
      gather: hooks.gather ?? false,
      qkvRows: hooks.qkvRows ?? false,
      columns: hooks.columns ?? false,
    };
    const session = await this.runtime.session(`${this.graphKey}|${variantKey(kind, variant)}`, () => {
      if (kind === 'block') return buildBlockGraph(this.cfg, variant as BlockVariant);
      return kind === 'embed' ? buildEmbedGraph(this.cfg, variant) : buildUnembedGraph(this.cfg, variant);
    });
    const all = { ...feeds };
    for (const [local, p] of hooks.patch) {
      all[patchInput(local)] = p.source;
      all[maskInput(local)] = p.mask;
    }
    this.flops += this.graphFlops(kind, feeds);
    return session.run(all);
  }

  /** Multiply-adds x2 of the matrix products a graph run performs (what benchmarks divide by time). */
  private graphFlops(kind: 'embed' | 'block' | 'unembed', feeds: Record<string, ort.Tensor>): number {
    const { dModel: D, dMlp: M, dVocab: V, nHeads: H, nKvHeads: K, dHead: E } = this.cfg;
    if (kind === 'unembed') return 2 * (feeds.rows!.dims[0]! as number) * D * (feeds.cols ? (feeds.cols.dims[1] as number) : V);
    if (kind === 'embed') return 0;
    const [rows, pos] = feeds.resid_pre!.dims as number[];
    const tokens = rows! * pos!;
    const kept = feeds.out_rows ? (feeds.out_rows.dims[0] as number) : tokens;
    const projected = feeds.qkv_rows ? (feeds.qkv_rows.dims[0] as number) : tokens;
    const keys = pos! + ((feeds.past_k?.dims[1] as number | undefined) ?? 0);
    const mlp = this.cfg.attnOnly ? 0 : (this.cfg.gatedMlp ? 3 : 2) * D * M;
    return 2 * projected * D * (H + 2 * K) * E + 4 * tokens * keys * H * E + 2 * kept * (H * E * D + mlp);
  }
}

interface PatchFeed {
  readonly source: ort.Tensor;
  readonly mask: ort.Tensor;
}

interface ScopeHooks {
  readonly capture: string[];
  readonly patch: Map<string, PatchFeed>;
}

const LOGIT_CHUNK_BYTES = 16 * 2 ** 20;

const int64 = (values: ArrayLike<number>, dims: number[]): ort.Tensor =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(values as ArrayLike<number>, (r) => BigInt(r)),
    dims,
  );
