/**
 * Grouped-query attention as a reader needs to see it: which query heads share a key/value head. Query
 * head h reads KV head floor(h / (nHeads / nKvHeads)). The k/v sweeps of such a model run over KV heads
 * (axis 'kv_head'); the stacked *_every sweeps keep TransformerLens's query-head shape, their key and
 * value rows past the last KV head hold null (no such head).
 */
export interface HeadGroups {
  readonly nHeads: number;
  readonly nKvHeads: number;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x > 0;

/** The model's head groups, or undefined when every query head has its own key/value head. */
export function headGroups(config: { readonly nHeads?: unknown; readonly nKvHeads?: unknown } | undefined): HeadGroups | undefined {
  const h = config?.nHeads;
  const k = config?.nKvHeads;
  if (!isCount(h) || !isCount(k) || k >= h || h % k !== 0) return undefined;
  return { nHeads: h, nKvHeads: k };
}

export const kvHeadOf = (g: HeadGroups, head: number): number => Math.floor(head / (g.nHeads / g.nKvHeads));

/** The query heads that read KV head `kv`, as 'H4–H7'. */
export function queryHeadsOf(g: HeadGroups, kv: number): string {
  const per = g.nHeads / g.nKvHeads;
  return per === 1 ? `H${kv}` : `H${kv * per}–H${kv * per + per - 1}`;
}

/** Components of the stacked sweeps whose head axis counts KV heads on a grouped-query model. */
export const isKvComponent = (name: string | undefined): boolean => name === 'key' || name === 'value';

/** A query head's label: 'H5', or 'H5 (KV1)' with grouped-query attention. */
export const queryHeadLabel = (head: number, g: HeadGroups | undefined): string => (g ? `H${head} (KV${kvHeadOf(g, head)})` : `H${head}`);

/** A KV head's label, '' for the padding rows of a stacked sweep (an index the model lacks). */
export const kvHeadLabel = (head: number, g: HeadGroups | undefined): string => (g && head >= g.nKvHeads ? '' : `KV${head}`);
