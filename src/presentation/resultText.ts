/** Text the panel shows about values and cells. Pure, so the Node tests can check it directly. */
import type { PatchResult, SweepResult } from '../protocol/result';
import { type HeadGroups, isKvComponent, kvHeadOf, queryHeadsOf } from './heads';

/**
 * A value in full: the shortest decimal that reads back as the same double (what the result file
 * holds), so a tooltip or CSV never rounds away the difference between two cells.
 */
export function exactValue(v: number): string {
  return Number.isNaN(v) ? 'NaN' : String(v);
}

/** Three significant digits, matching the PNG export's colour bar and subtitle. */
export function shortValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return String(Number(v.toPrecision(3)));
}

/**
 * A sweep's name as the panel's list and the PNG's title give it: path patching's heatmap says what it
 * was measured through, and the value of its sender set (`path_patching → L2H0.q, L2H1.k`).
 */
export function sweepTitle(name: string, sweep: SweepResult | undefined): string {
  const r = sweep?.receivers;
  if (!r || r.length === 0) return name;
  const through = r.length > 4 ? `${r.slice(0, 4).join(', ')}, … (${r.length} receivers)` : r.join(', ');
  const set = sweep.senderSet ? `; ${sweep.senderSet.senders.join(' + ')} together: ${shortValue(sweep.senderSet.value)}` : '';
  return `${name} → ${through}${set}`;
}

/** The same names the PNG export uses, so the panel and the exported picture agree. */
export const METRIC_TITLES: Readonly<Record<string, string>> = {
  logit_diff: 'logit difference',
  normalized_logit_diff: 'normalized logit difference',
  answer_logprob: 'answer log-prob',
  kl_divergence: 'KL divergence',
  answer_prob: 'answer probability',
};

export const metricTitle = (metric: string): string => METRIC_TITLES[metric] ?? metric;

/**
 * A token as the tooltip shows it: whitespace made visible as on the axis labels (tokenLabel), but whole,
 * since the tooltip is where a label shortened with '…' can be read in full.
 */
export function tokenText(token: string): string {
  let s = '';
  for (const ch of token) {
    if (ch === ' ') s += '␣';
    else if (ch === '\n') s += '↵';
    else if (ch === '\r') s += '␍';
    else if (ch === '\t') s += '⇥';
    else if (ch < ' ' || ch === '\u007f') s += `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
    else s += ch;
  }
  return s;
}

/**
 * One cell in words, axes in the sweep's own (TransformerLens) order:
 * `layer 3, pos 5 (␣Mary), head 2: 0.1234567 (37% of clean)`; a component is named rather than
 * numbered; with grouped-query attention a head names its KV group and a KV head its query heads.
 * A null value is an index the model does not have.
 */
export function describeCell(
  sweep: SweepResult,
  tokens: readonly string[],
  index: readonly number[],
  value: number | null,
  opts: { readonly heads?: HeadGroups; readonly fraction?: string } = {},
): string {
  const g = opts.heads;
  const component = sweep.axes[0] === 'component' ? sweep.components?.[index[0] ?? -1] : undefined;
  const kvPadded = g !== undefined && isKvComponent(component);
  const parts = sweep.axes.map((axis, k) => {
    const i = index[k]!;
    if (axis === 'component') return sweep.components?.[i] ?? `component ${i}`;
    if (/label/.test(axis)) return `${axis} ${sweep.labels?.[i] ?? i}`;
    if (/pos/.test(axis)) {
      const t = tokens[i];
      return t === undefined ? `${axis} ${i}` : `${axis} ${i} (${tokenText(t)})`;
    }
    if (axis === 'kv_head' || (axis === 'head' && kvPadded)) return g && i < g.nKvHeads ? `kv_head ${i} (read by ${queryHeadsOf(g, i)})` : `kv_head ${i}`;
    if (axis === 'head' && g) return `head ${i} (KV${kvHeadOf(g, i)})`;
    return `${axis} ${i}`;
  });
  if (value === null) return `${parts.join(', ')}: no such head${g ? ` (the model has ${g.nKvHeads} key/value heads)` : ''}`;
  return `${parts.join(', ')}: ${exactValue(value)}${opts.fraction ? ` (${opts.fraction})` : ''}`;
}

/** `clean 3.1, corrupted -2.9` (an ablation run has only a clean baseline). */
export function baselinesText(b: { readonly clean: number; readonly corrupted?: number }, format: (v: number) => string = shortValue): string {
  return `clean ${format(b.clean)}${b.corrupted === undefined ? '' : `, corrupted ${format(b.corrupted)}`}`;
}

/** Which way the patches went: `denoising: clean → corrupted run`, `noising: …`, `mean ablation of the clean run`. */
export function flowText(result: Pick<PatchResult, 'direction' | 'ablation'>): string {
  if (result.ablation) return `${result.ablation.replace(/_/g, ' ')} ablation of the clean run`;
  return result.direction === 'noising' ? 'noising: corrupted → clean run' : 'denoising: clean → corrupted run';
}

/** The line under the title: model, metric, which way the patches went, baselines, status; also the PNG's subtitle. */
export function summaryParts(result: PatchResult): string[] {
  const parts = [`model: ${result.model.id}${result.model.provider ? ` (${result.model.provider})` : ''}`, `metric: ${metricTitle(result.metric)}`];
  if (result.direction || result.ablation) parts.push(flowText(result));
  if (result.baselines) parts.push(baselinesText(result.baselines));
  if (result.status !== 'done') parts.push(`status: ${result.status}`);
  return parts;
}

/**
 * Sentences about the run that a reader must not miss: a run that did not finish, and a normalized
 * metric whose baselines coincide (then every normalized value is a division by zero).
 */
export function notices(result: PatchResult): string[] {
  const out: string[] = [];
  if (result.status === 'cancelled') out.push(`This run was cancelled${result.message ? `: ${result.message}` : ''}. The values shown may be incomplete.`);
  if (result.status === 'failed') out.push(`This run failed${result.message ? `: ${result.message}` : ''}.`);
  const b = result.baselines;
  if (result.metric === 'normalized_logit_diff' && b && b.clean === b.corrupted) {
    out.push(
      `The clean and corrupted logit differences are equal (${exactValue(b.clean)}), so the normalized metric is undefined; ` +
        'rerun with metric logit_diff to see the raw values.',
    );
  }
  return out;
}
