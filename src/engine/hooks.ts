import type { ModelConfig } from './model/config';

/**
 * Hook points, named and shaped as TransformerLens names and shapes them. A block hook's full name is
 * `blocks.{layer}.{hook}`. Patches overwrite a hook's value per mask cell: a (row, pos) for residual-like
 * hooks, a (row, pos, head) for q/k/v/z, a (row, head, dest, src) for scores and pattern.
 */
export const BLOCK_HOOKS = [
  'hook_resid_pre',
  'attn.hook_q',
  'attn.hook_k',
  'attn.hook_v',
  'attn.hook_attn_scores',
  'attn.hook_pattern',
  'attn.hook_z',
  'hook_attn_out',
  'hook_resid_mid',
  'mlp.hook_pre',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
] as const;
export type BlockHook = (typeof BLOCK_HOOKS)[number];

export const EMBED_HOOKS = ['hook_embed', 'hook_pos_embed'] as const;
export const FINAL_HOOKS = ['ln_final.hook_normalized'] as const;
export type GlobalHook = (typeof EMBED_HOOKS)[number] | (typeof FINAL_HOOKS)[number];

export type HookRef = { kind: 'block'; layer: number; hook: BlockHook } | { kind: 'global'; hook: GlobalHook };

export function blockHookName(layer: number, hook: BlockHook): string {
  return `blocks.${layer}.${hook}`;
}

export function allHookNames(cfg: ModelConfig): string[] {
  const names: string[] = [...EMBED_HOOKS];
  for (let l = 0; l < cfg.nLayers; l++) for (const h of BLOCK_HOOKS) names.push(blockHookName(l, h));
  names.push(...FINAL_HOOKS);
  return names;
}

export function parseHookName(name: string, cfg: ModelConfig): HookRef | undefined {
  if ((EMBED_HOOKS as readonly string[]).includes(name) || (FINAL_HOOKS as readonly string[]).includes(name)) {
    return { kind: 'global', hook: name as GlobalHook };
  }
  const m = /^blocks\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const layer = Number(m[1]);
  const hook = m[2] as BlockHook;
  if (layer >= cfg.nLayers || !BLOCK_HOOKS.includes(hook)) return undefined;
  return { kind: 'block', layer, hook };
}

/** How a hook's activation is laid out: [b, pos, d_model], [b, pos, d_mlp], [b, pos, head, d_head] or [b, head, dest, src]. */
export type HookLayout = 'resid' | 'mlp' | 'head' | 'attn';

export function layoutOf(hook: BlockHook | GlobalHook): HookLayout {
  switch (hook) {
    case 'attn.hook_q':
    case 'attn.hook_k':
    case 'attn.hook_v':
    case 'attn.hook_z':
      return 'head';
    case 'attn.hook_attn_scores':
    case 'attn.hook_pattern':
      return 'attn';
    case 'mlp.hook_pre':
    case 'mlp.hook_post':
      return 'mlp';
    default:
      return 'resid';
  }
}

/** The activation's shape for a batch of `batch` rows of `pos` tokens. */
export function hookShape(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  switch (layoutOf(hook)) {
    case 'resid':
      return [batch, pos, cfg.dModel];
    case 'mlp':
      return [batch, pos, cfg.dMlp];
    case 'head':
      return [batch, pos, cfg.nHeads, cfg.dHead];
    case 'attn':
      return [batch, cfg.nHeads, pos, pos];
  }
}

/** The shape of a patch mask for that hook: one cell per independently patchable slice. */
export function hookMaskShape(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  switch (layoutOf(hook)) {
    case 'resid':
    case 'mlp':
      return [batch, pos];
    case 'head':
      return [batch, pos, cfg.nHeads];
    case 'attn':
      return [batch, cfg.nHeads, pos, pos];
  }
}

/**
 * The mask's dims as a graph takes them: a trailing 1 broadcasts a (row, pos[, head]) cell over its
 * vector. Attention masks keep their full [row, head, dest, src] shape.
 */
export function hookMaskGraphDims(cfg: ModelConfig, hook: BlockHook | GlobalHook, batch: number, pos: number): number[] {
  const mask = hookMaskShape(cfg, hook, batch, pos);
  return mask.length < hookShape(cfg, hook, batch, pos).length ? [...mask, 1] : mask;
}
