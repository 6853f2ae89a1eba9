import type { ModelConfig } from './model/config';

/**
 * Hook points, named and shaped as TransformerLens names and shapes them, for one model's config: which
 * hooks exist depends on the family (hook_rot_q only with rotary embeddings, hook_resid_mid only with a
 * sequential MLP, ...). A block hook's full name is `blocks.{layer}.{hook}`. A patch overwrites a hook's
 * value per mask cell: a (row, pos) for 'resid' hooks, a (row, pos, head) for 'head' hooks, a
 * (row, head, dest, src) for attention scores and pattern.
 */
export type HookLayout = 'resid' | 'head' | 'attn';

export interface HookInfo {
  readonly layout: HookLayout;
  /** The size of one cell's vector: d_model, d_mlp, d_head, 1 for a norm's scale; unused for 'attn'. */
  readonly width: number;
  /** Heads of a 'head' hook (n_key_value_heads for k and v), query heads for 'attn'. */
  readonly heads: number;
  /** k-side hooks of a block hold the keys of every position attended to, not only the block's own. */
  readonly keySide?: boolean;
}

/** Local names, such as 'attn.hook_q'. */
export type BlockHook = string;
export type GlobalHook = string;

export type HookRef = { kind: 'block'; layer: number; hook: BlockHook } | { kind: 'global'; hook: GlobalHook; graph: 'embed' | 'unembed' };

const resid = (width: number): HookInfo => ({ layout: 'resid', width, heads: 0 });
const head = (heads: number, width: number, keySide = false): HookInfo => ({ layout: 'head', width, heads, ...(keySide ? { keySide } : {}) });

/** A norm's two TransformerLens hooks: the divisor (hook_scale) and the value before the gain (hook_normalized). */
function normHooks(out: Map<string, HookInfo>, prefix: string, info: (width: number) => HookInfo, width: number): void {
  out.set(`${prefix}.hook_scale`, info(1));
  out.set(`${prefix}.hook_normalized`, info(width));
}

const blockTables = new WeakMap<ModelConfig, ReadonlyMap<BlockHook, HookInfo>>();

/** The hooks of every block of this model, in forward order. */
export function blockHooks(cfg: ModelConfig): ReadonlyMap<BlockHook, HookInfo> {
  let table = blockTables.get(cfg);
  if (table) return table;
  const { dModel: D, dMlp: M, dHead: E, nHeads: H, nKvHeads: K } = cfg;
  const t = new Map<BlockHook, HookInfo>();
  t.set('hook_resid_pre', resid(D));
  if (cfg.normPlacement !== 'post') normHooks(t, 'ln1', resid, D);
  t.set('attn.hook_q', head(H, E));
  t.set('attn.hook_k', head(K, E));
  t.set('attn.hook_v', head(K, E));
  if (cfg.qkNorm === 'head') {
    normHooks(t, 'attn.q_norm', (w) => head(H, w), E);
    normHooks(t, 'attn.k_norm', (w) => head(K, w, true), E);
  } else if (cfg.qkNorm === 'full') {
    normHooks(t, 'attn.q_norm', resid, H * E);
    normHooks(t, 'attn.k_norm', (w) => ({ ...resid(w), keySide: true }), K * E);
  }
  if (cfg.positional === 'rotary') {
    t.set('attn.hook_rot_q', head(H, E));
    t.set('attn.hook_rot_k', head(K, E, true));
  }
  t.set('attn.hook_attn_scores', { layout: 'attn', width: 0, heads: H });
  t.set('attn.hook_pattern', { layout: 'attn', width: 0, heads: H });
  t.set('attn.hook_z', head(H, E));
  if (cfg.normPlacement === 'pre_post') normHooks(t, 'ln1_post', resid, D);
  t.set('hook_attn_out', resid(D));
  if (cfg.normPlacement === 'post') normHooks(t, 'ln1', resid, D);
  if (!cfg.attnOnly) {
    if (!cfg.parallelAttnMlp) t.set('hook_resid_mid', resid(D));
    if (cfg.normPlacement !== 'post') normHooks(t, 'ln2', resid, D);
    t.set('mlp.hook_pre', resid(M));
    if (cfg.gatedMlp) t.set('mlp.hook_pre_linear', resid(M));
    if (cfg.activation === 'solu_ln') {
      t.set('mlp.hook_mid', resid(M));
      normHooks(t, 'mlp.ln', resid, M);
    }
    t.set('mlp.hook_post', resid(M));
    if (cfg.normPlacement === 'pre_post') normHooks(t, 'ln2_post', resid, D);
    t.set('hook_mlp_out', resid(D));
    if (cfg.normPlacement === 'post') normHooks(t, 'ln2', resid, D);
  }
  t.set('hook_resid_post', resid(D));
  table = t;
  blockTables.set(cfg, table);
  return table;
}

/** Hooks outside the blocks and the graph that owns each. */
export function globalHooks(cfg: ModelConfig): ReadonlyMap<GlobalHook, HookInfo & { graph: 'embed' | 'unembed' }> {
  const D = cfg.dModel;
  const t = new Map<GlobalHook, HookInfo & { graph: 'embed' | 'unembed' }>();
  t.set('hook_embed', { ...resid(D), graph: 'embed' });
  if (cfg.positional !== 'rotary') t.set('hook_pos_embed', { ...resid(D), graph: 'embed' });
  t.set('ln_final.hook_scale', { ...resid(1), graph: 'unembed' });
  t.set('ln_final.hook_normalized', { ...resid(D), graph: 'unembed' });
  return t;
}

export function blockHookName(layer: number, hook: BlockHook): string {
  return `blocks.${layer}.${hook}`;
}

export function allHookNames(cfg: ModelConfig): string[] {
  const names: string[] = [];
  const globals = [...globalHooks(cfg)];
  for (const [n, g] of globals) if (g.graph === 'embed') names.push(n);
  for (let l = 0; l < cfg.nLayers; l++) for (const h of blockHooks(cfg).keys()) names.push(blockHookName(l, h));
  for (const [n, g] of globals) if (g.graph === 'unembed') names.push(n);
  return names;
}

export function parseHookName(name: string, cfg: ModelConfig): HookRef | undefined {
  const g = globalHooks(cfg).get(name);
  if (g) return { kind: 'global', hook: name, graph: g.graph };
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const layer = Number(m[1]);
  const hook = m[2]!;
  if (layer >= cfg.nLayers || !blockHooks(cfg).has(hook)) return undefined;
  return { kind: 'block', layer, hook };
}

/** The table entry of a block or global hook's local name; throws on a hook this model lacks. */
export function hookInfo(cfg: ModelConfig, hook: BlockHook | GlobalHook): HookInfo {
  const info = blockHooks(cfg).get(hook) ?? globalHooks(cfg).get(hook);
  if (!info) throw new Error(`this ${cfg.architecture} model has no hook point '${hook}'`);
  return info;
}

export function layoutOf(cfg: ModelConfig, hook: BlockHook | GlobalHook): HookLayout {
  return hookInfo(cfg, hook).layout;
}

/** The activation's shape for a batch of `batch` rows of `pos` tokens. */
export function hookShape(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  const info = hookInfo(cfg, hook);
  switch (info.layout) {
    case 'resid':
      return [batch, pos, info.width];
    case 'head':
      return [batch, pos, info.heads, info.width];
    case 'attn':
      return [batch, info.heads, pos, pos];
  }
}

/** The shape of a patch mask for that hook: one cell per independently patchable slice. */
export function hookMaskShape(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  const info = hookInfo(cfg, hook);
  switch (info.layout) {
    case 'resid':
      return [batch, pos];
    case 'head':
      return [batch, pos, info.heads];
    case 'attn':
      return [batch, info.heads, pos, pos];
  }
}

/**
 * The mask's dims as a graph takes them: a trailing 1 broadcasts a (row, pos[, head]) cell over its
 * vector. Attention masks keep their full [row, head, dest, src] shape.
 */
export function hookMaskGraphDims(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  const mask = hookMaskShape(cfg, hook, batch, pos);
  return layoutOf(cfg, hook) === 'attn' ? mask : [...mask, 1];
}
