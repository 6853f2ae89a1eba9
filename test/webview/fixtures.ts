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
