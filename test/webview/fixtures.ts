/** A small synthetic run with every sweep shape the panel lays out differently. */
import type { PatchResult, SweepResult } from '../../src/protocol/result';

export const L = 2;
export const P = 5;
export const H = 3;
export const TOKENS = ['<|endoftext|>', 'When', ' Mary', ' and', ' John'];

/** Distinct, non-round values (so a rounded export would show), with a large +/− pair for colour checks. */
export function values(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.round(Math.sin(i * 1.7 + seed) * 1e7) / 1e8 + (i % 7 === 3 ? 1 / 3 : 0));
}

export const SWEEPS: Record<string, SweepResult> = {
  resid_pre: { shape: [L, P], axes: ['layer', 'pos'], values: values(L * P, 1) },
  attn_head_out_all_pos: { shape: [L, H], axes: ['layer', 'head'], values: values(L * H, 2) },
  attn_head_out_by_pos: { shape: [L, P, H], axes: ['layer', 'pos', 'head'], values: values(L * P * H, 3) },
  block_every: { shape: [3, L, P], axes: ['component', 'layer', 'pos'], values: values(3 * L * P, 4), components: ['resid_pre', 'attn_out', 'mlp_out'] },
  attn_head_pattern_dest_src_pos: { shape: [L, H, P, P], axes: ['layer', 'head', 'dest_pos', 'src_pos'], values: values(L * H * P * P, 5) },
};
// A NaN cell (shouldn't happen, but must show as such): resid_pre at layer 1, pos 2.
SWEEPS.resid_pre.values[1 * P + 2] = NaN;
// A strong effect to colour: +1 and −1 in block_every's resid_pre facet.
SWEEPS.block_every.values[0 * P + 1] = 1;
SWEEPS.block_every.values[1 * P + 3] = -1;

export function makeResult(opts: { name?: string; tokens?: string[]; sweeps?: Record<string, SweepResult>; status?: PatchResult['status']; message?: string } = {}): PatchResult {
  const tokens = opts.tokens ?? TOKENS;
  const prompt = { ids: tokens.map((_, i) => i), strings: tokens, ranges: tokens.map(() => null) };
  const sweeps = opts.sweeps ?? SWEEPS;
  return {
    format: 'patchlens.result/1',
    name: opts.name ?? 'ioi-small',
    status: opts.status ?? 'done',
    message: opts.message,
    createdAt: '2025-01-01T00:00:00.000Z',
    spec: { metric: 'logit_diff', sweeps: Object.keys(sweeps) } as unknown as PatchResult['spec'],
    model: {
      id: 'gpt2-synthetic',
      config: { nLayers: L, nHeads: H, dModel: 8, dHead: 4, dMlp: 32, dVocab: 16, nCtx: 8 },
      dtype: 'float32',
      provider: 'cpu',
      weightProcessing: 'none',
    },
    engine: { version: '0.1.0', mode: 'fast', seconds: 0.5 },
    metric: 'logit_diff',
    tokens: [{ clean: prompt, corrupted: prompt }],
    baselines: { clean: 3.2051234, corrupted: -0.4187 },
    sweeps,
  } as PatchResult;
}

/** GPT-2 small's sizes on a 47-token prompt: 12 layers, 12 heads. */
export const GPT2 = { L: 12, H: 12, P: 47 } as const;
const GPT2_TOKENS = ['<|endoftext|>', ...Array.from({ length: GPT2.P - 1 }, (_, i) => [' When', ' Mary', ' and', ' John', ' went', ' to', ' the', ' store', ',', '\n'][i % 10]!)];

/**
 * A run shaped like GPT-2 small's: resid_pre [12, 47], attn_head_out_by_pos [12, 47, 12] and block_every
 * [3, 12, 47], at the corrupted baseline but for a few cells: resid_pre restores 90% at layer 3, pos 40,
 * and the by-position sweep 100% at L11H5, pos 46 (the bottom row, far below the fold).
 */
export function gpt2Result(): PatchResult {
  const { L: l, H: h, P: p } = GPT2;
  const b = { clean: 4, corrupted: -2 };
  const noise = (i: number): number => b.corrupted + 0.05 * Math.sin(i * 1.3);
  const resid = Array.from({ length: l * p }, (_, i) => noise(i));
  resid[3 * p + 40] = b.corrupted + 0.9 * (b.clean - b.corrupted);
  const byPos = Array.from({ length: l * p * h }, (_, i) => noise(i));
  byPos[(11 * p + 46) * h + 5] = b.clean;
  const r = makeResult({
    name: 'gpt2-shaped',
    tokens: GPT2_TOKENS,
    sweeps: {
      resid_pre: { shape: [l, p], axes: ['layer', 'pos'], values: resid },
      attn_head_out_by_pos: { shape: [l, p, h], axes: ['layer', 'pos', 'head'], values: byPos },
      block_every: {
        shape: [3, l, p],
        axes: ['component', 'layer', 'pos'],
        values: Array.from({ length: 3 * l * p }, (_, i) => noise(i)),
        components: ['resid_pre', 'attn_out', 'mlp_out'],
      },
    },
  });
  return { ...r, model: { ...r.model, config: { ...r.model.config!, nLayers: l, nHeads: h } }, baselines: b };
}

/**
 * A grouped-query run: 4 query heads share 2 KV heads (H0, H1 read KV0; H2, H3 read KV1). The stacked
 * sweep keeps 4 heads; its key and value rows for heads 2 and 3 do not exist (null).
 */
export function gqaResult(): PatchResult {
  const comps = ['output', 'query', 'key', 'value', 'pattern'];
  const values: (number | null)[] = Array.from({ length: 5 * L * 4 }, (_, i) => {
    const c = Math.floor(i / (L * 4));
    return (c === 2 || c === 3) && i % 4 >= 2 ? null : 0.01 * Math.sin(i);
  });
  values[(2 * L + 1) * 4 + 1] = 0.8; // key, L1, KV1
  const r = makeResult({
    name: 'gqa',
    sweeps: {
      attn_head_all_pos_every: { shape: [5, L, 4], axes: ['component', 'layer', 'head'], values, components: comps },
      attn_head_k_all_pos: { shape: [L, 2], axes: ['layer', 'kv_head'], values: [0.1, 0.2, 0.3, 0.4] },
    },
  });
  return { ...r, metric: 'normalized_logit_diff', model: { ...r.model, config: { ...r.model.config!, nHeads: 4, nKvHeads: 2 } } };
}
