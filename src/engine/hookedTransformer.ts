import * as ort from 'onnxruntime-node';
import { BLOCK_WEIGHT_NAMES, buildBlockGraph, hookOutput, maskInput, patchInput, variantKey } from './graph/blockGraph';
import { buildEmbedGraph, buildUnembedGraph } from './graph/edgeGraphs';
import { allHookNames, type BlockHook, EMBED_HOOKS, hookMaskShape, hookShape, parseHookName } from './hooks';
import type { ModelConfig } from './model/config';
import type { TextTokenizer } from './model/tokenizer';
import type { BlockWeights, ModelWeights } from './model/weights';
import type { Runtime } from './runtime';
import { numel, type Tensor32 } from './tensor';
import { UserError } from './userError';

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
}

export interface ForwardResult {
  /** [batch, pos, vocab], or [rows, vocab] when logitRows was given. */
  readonly logits: Tensor32;
  readonly cache: Map<string, Tensor32>;
}

const f32 = (t: Tensor32): ort.Tensor => new ort.Tensor('float32', t.data, t.shape as number[]);
const toTensor32 = (t: ort.Tensor): Tensor32 => ({ shape: [...t.dims], data: t.data as Float32Array });

/** Mask dims as the graphs take them: a trailing 1 broadcasts a (row, pos[, head]) cell over its vector. */
function graphMaskDims(maskShape: number[], hookRank: number): number[] {
  return maskShape.length < hookRank ? [...maskShape, 1] : maskShape;
}

/**
 * A GPT-2-family model whose every TransformerLens hook point can be read and overwritten. The model is
 * evaluated as embed -> block x L -> unembed sessions; weights are fed as inputs, so one compiled block
 * serves all layers and no weight is copied.
 */
export class HookedTransformer {
  private readonly blockFeeds: Record<string, ort.Tensor>[];
  private readonly embedFeeds: Record<string, ort.Tensor>;
  private readonly unembedFeeds: Record<string, ort.Tensor>;

  constructor(
    readonly cfg: ModelConfig,
    weights: ModelWeights,
    readonly runtime: Runtime,
    readonly tokenizer?: TextTokenizer,
  ) {
    this.blockFeeds = weights.blocks.map((b: BlockWeights) =>
      Object.fromEntries(BLOCK_WEIGHT_NAMES.map((n) => [n, f32(b[n])])),
    );
    this.embedFeeds = { wte: f32(weights.wte), wpe: f32(weights.wpe) };
    this.unembedFeeds = { lnfW: f32(weights.lnfW), lnfB: f32(weights.lnfB), unembed: f32(weights.unembed) };
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
    const byScope = this.groupHooks(capture, [...patches.keys()], B, P, patches);
    const cache = new Map<string, Tensor32>();

    const idData = new BigInt64Array(B * P);
    ids.forEach((row, r) => row.forEach((id, p) => (idData[r * P + p] = BigInt(id))));
    const embed = await this.runScope(B, P, 'embed', byScope.get('embed'), { ...this.embedFeeds, ids: new ort.Tensor('int64', idData, [B, P]) }, patches, cache, (h) => h);
    let resid = embed.resid!;
    for (let l = 0; l < this.cfg.nLayers; l++) {
      const out = await this.runScope(B, P, `block${l}`, byScope.get(`block${l}`), { ...this.blockFeeds[l]!, resid_pre: resid }, patches, cache, (h) => `blocks.${l}.${h}`);
      resid = out.resid_post!;
    }
    const rows = opts.logitRows ?? Array.from({ length: B * P }, (_, i) => i);
    const rowData = BigInt64Array.from(rows.map((r) => BigInt(r)));
    const un = await this.runScope(B, P, 'unembed', byScope.get('unembed'), { ...this.unembedFeeds, resid, rows: new ort.Tensor('int64', rowData, [rows.length]) }, patches, cache, (h) => h);
    const logits = toTensor32(un.logits!);
    return { logits: opts.logitRows ? logits : { shape: [B, P, this.cfg.dVocab], data: logits.data }, cache };
  }

  /** Splits hook names by the graph that owns them and validates every patch's shape. */
  private groupHooks(capture: readonly string[], patched: readonly string[], B: number, P: number, patches: ReadonlyMap<string, HookPatch>) {
    const groups = new Map<string, { capture: string[]; patch: string[] }>();
    const scopeOf = (name: string): { scope: string; local: string } => {
      const ref = parseHookName(name, this.cfg);
      if (!ref) throw new Error(`unknown hook point '${name}'`);
      if (ref.kind === 'block') return { scope: `block${ref.layer}`, local: ref.hook };
      return { scope: (EMBED_HOOKS as readonly string[]).includes(ref.hook) ? 'embed' : 'unembed', local: ref.hook };
    };
    const entry = (scope: string) => {
      let e = groups.get(scope);
      if (!e) groups.set(scope, (e = { capture: [], patch: [] }));
      return e;
    };
    for (const name of capture) {
      const { scope, local } = scopeOf(name);
      entry(scope).capture.push(local);
    }
    for (const name of patched) {
      const { scope, local } = scopeOf(name);
      const hook = local as BlockHook;
      const p = patches.get(name)!;
      const want = hookShape(this.cfg, hook, B, P);
      if (p.source.shape.join() !== want.join()) throw new Error(`patch for ${name} has shape [${p.source.shape}], expected [${want}]`);
      const maskLen = numel(hookMaskShape(this.cfg, hook, B, P));
      if (p.mask.length !== maskLen) throw new Error(`patch mask for ${name} has ${p.mask.length} cells, expected ${maskLen}`);
      entry(scope).patch.push(local);
    }
    return groups;
  }

  private async runScope(
    B: number,
    P: number,
    scope: string,
    v: { capture: string[]; patch: string[] } | undefined,
    feeds: Record<string, ort.Tensor>,
    patches: ReadonlyMap<string, HookPatch>,
    cache: Map<string, Tensor32>,
    fullName: (local: string) => string,
  ): Promise<Record<string, ort.Tensor>> {
    const variant = v ?? { capture: [], patch: [] };
    const kind = scope.startsWith('block') ? 'block' : scope;
    const key = variantKey(kind, variant);
    const session = await this.runtime.session(key, () => {
      if (kind === 'block') return buildBlockGraph(this.cfg, { ...variant, capture: variant.capture as BlockHook[], patch: variant.patch as BlockHook[], withPast: false });
      return kind === 'embed' ? buildEmbedGraph(this.cfg, variant) : buildUnembedGraph(this.cfg, variant);
    });
    const allFeeds = { ...feeds };
    for (const local of variant.patch) {
      const p = patches.get(fullName(local))!;
      allFeeds[patchInput(local)] = f32(p.source);
      const dims = graphMaskDims(hookMaskShape(this.cfg, local as BlockHook, B, P), p.source.shape.length);
      allFeeds[maskInput(local)] = new ort.Tensor('bool', p.mask, dims);
    }
    const out = await session.run(allFeeds);
    for (const local of variant.capture) cache.set(fullName(local), toTensor32(out[hookOutput(local)]!));
    return out;
  }
}
