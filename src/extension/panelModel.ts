/**
 * The results panel's logic without the panel: checking what the webview sends, mapping a heatmap
 * position to the characters of its token and back, and the CSV of a sweep. Pure.
 */
import { layoutSweep } from '../presentation/heatmapLayout';
import { headGroups } from '../presentation/heads';
import { parseComponent } from '../protocol/components';
import type { PatchResult } from '../protocol/result';
import { type PatchSpec, plotProblem, type PlotSpec, RESULT_SWEEP_NAMES, type ResultSweepName } from '../protocol/spec';
import type { WebviewState, WebviewToHost } from '../protocol/webviewMessages';

/** Bounds on what the webview may send: a PNG of a big facet grid is a few MB, never hundreds. */
export const MAX_PNG_DATA_URL_CHARS = 64 * 1024 * 1024;
export const MAX_CSV_CHARS = 64 * 1024 * 1024;
const MAX_POSITION = 1 << 20;

const isSweep = (v: unknown): v is ResultSweepName => (RESULT_SWEEP_NAMES as readonly unknown[]).includes(v);
const isPos = (v: unknown): v is number | null => v === null || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < MAX_POSITION);

/**
 * The spec of a "Patch together" run: the shown run's spec with one patch set, the selected
 * components, in place of its sweeps (and named after the run). Sets are patched exactly, so an
 * attribution run's method goes too.
 */
export function patchTogetherSpec(result: PatchResult, components: string[]): PatchSpec {
  const { sweeps: _sweeps, patch_sets: _sets, method: _method, verify_top: _verify, ...rest } = result.spec;
  return { ...rest, name: `${result.name}-together`, patch_sets: [{ name: `${components.length} selected cell${components.length === 1 ? '' : 's'}`, components }] };
}

/** More cells than anyone selects by hand; the bound keeps a runaway page from queuing a huge run. */
const MAX_PATCH_COMPONENTS = 1000;

/**
 * The message if it is one the host understands with fields of the right types, else a reason. The
 * webview runs untrusted data (token strings from the model's vocabulary), so nothing it sends is
 * trusted: paths never come from it, sizes are bounded.
 */
export function validateWebviewMessage(m: unknown): { ok: true; message: WebviewToHost } | { ok: false; reason: string } {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return { ok: false, reason: 'not an object' };
  const o = m as Record<string, unknown>;
  switch (o.type) {
    case 'ready':
      return { ok: true, message: { type: 'ready' } };
    case 'hoverPosition':
      return isPos(o.pos) ? { ok: true, message: { type: 'hoverPosition', pos: o.pos } } : { ok: false, reason: 'hoverPosition.pos is not a position or null' };
    case 'selectSweep':
      return isSweep(o.sweep) ? { ok: true, message: { type: 'selectSweep', sweep: o.sweep } } : { ok: false, reason: 'selectSweep.sweep is not a sweep name' };
    case 'plotChoice': {
      if (o.plot === null) return { ok: true, message: { type: 'plotChoice', plot: null } };
      const problem = plotProblem(o.plot);
      if (o.plot === undefined || problem) return { ok: false, reason: `plotChoice.plot is not plot settings${problem ? ` (${problem.message})` : ''}` };
      const p = o.plot as PlotSpec;
      // Rebuilt from the known keys only: what is stored comes from the webview, which shows untrusted text.
      const plot: PlotSpec = {
        ...(p.center !== undefined ? { center: p.center } : {}),
        ...(p.zmin !== undefined ? { zmin: p.zmin } : {}),
        ...(p.zmax !== undefined ? { zmax: p.zmax } : {}),
      };
      return { ok: true, message: { type: 'plotChoice', plot } };
    }
    case 'exportPng':
      if (!isSweep(o.sweep)) return { ok: false, reason: 'exportPng.sweep is not a sweep name' };
      if (typeof o.dataUrl !== 'string' || !o.dataUrl.startsWith('data:image/png;base64,') || o.dataUrl.length > MAX_PNG_DATA_URL_CHARS) {
        return { ok: false, reason: 'exportPng.dataUrl is not a PNG data: URL of bounded size' };
      }
      return { ok: true, message: { type: 'exportPng', sweep: o.sweep, dataUrl: o.dataUrl } };
    case 'exportCsv':
      if (!isSweep(o.sweep)) return { ok: false, reason: 'exportCsv.sweep is not a sweep name' };
      if (typeof o.csv !== 'string' || o.csv.length > MAX_CSV_CHARS) return { ok: false, reason: 'exportCsv.csv is not a string of bounded size' };
      return { ok: true, message: { type: 'exportCsv', sweep: o.sweep, csv: o.csv } };
    case 'patchTogether': {
      const c = o.components;
      if (!Array.isArray(c) || c.length === 0 || c.length > MAX_PATCH_COMPONENTS || !c.every((x) => typeof x === 'string' && parseComponent(x) !== undefined)) {
        return { ok: false, reason: `patchTogether.components is not a list of 1 to ${MAX_PATCH_COMPONENTS} component names` };
      }
      return { ok: true, message: { type: 'patchTogether', components: [...new Set(c as string[])] } };
    }
    default:
      return { ok: false, reason: `unknown message type ${JSON.stringify(o.type)}` };
  }
}

/** A restored panel's state, if it is one (it comes back from the webview, so it is checked too). */
export function validateWebviewState(s: unknown): WebviewState | undefined {
  if (typeof s !== 'object' || s === null) return undefined;
  const o = s as Record<string, unknown>;
  if (typeof o.resultPath !== 'string' || !o.resultPath.endsWith('.json')) return undefined;
  return { resultPath: o.resultPath, ...(isSweep(o.sweep) ? { sweep: o.sweep } : {}) };
}

/** PNG bytes from a checked data: URL, or undefined when they are not a PNG. */
export function pngFromDataUrl(dataUrl: string): Buffer | undefined {
  const comma = dataUrl.indexOf(',');
  const bytes = Buffer.from(dataUrl.slice(comma + 1), 'base64');
  const magic = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return bytes.length > magic.length && magic.every((b, i) => bytes[i] === b) ? bytes : undefined;
}

/**
 * The document ranges of the token at position `pos`, in every pair's clean and corrupted prompt (one
 * column of the heatmap is the same position in all of them). BOS and tokens given as ids have none.
 */
export function tokenRangesAt(result: PatchResult, pos: number): [number, number][] {
  const out: [number, number][] = [];
  for (const pair of result.tokens) {
    for (const t of [pair.clean, ...(pair.corrupted ? [pair.corrupted] : [])]) {
      const r = t.ranges[pos];
      if (r && r[1] > r[0] && !out.some((o) => o[0] === r[0] && o[1] === r[1])) out.push([r[0], r[1]]);
    }
  }
  return out;
}

/** The position whose token covers document offset `offset` (a cursor just after a token counts), or null. */
export function positionAtOffset(result: PatchResult, offset: number): number | null {
  let after: number | null = null;
  for (const pair of result.tokens) {
    for (const t of [pair.clean, ...(pair.corrupted ? [pair.corrupted] : [])]) {
      for (let i = 0; i < t.ranges.length; i++) {
        const r = t.ranges[i];
        if (!r) continue;
        if (offset >= r[0] && offset < r[1]) return i;
        if (offset === r[1]) after = i;
      }
    }
  }
  return after;
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * A sweep as CSV, laid out as its heatmap (the same facets, rows and column labels as the panel and
 * the PNG export): a facet column, a row-label column, then one column per heatmap column. A cell the
 * model does not have (null) is empty.
 */
export function sweepCsv(result: PatchResult, sweep: ResultSweepName): string {
  const s = result.sweeps[sweep];
  if (!s) throw new Error(`the result has no sweep ${sweep}`);
  const facets = layoutSweep(s, { tokens: result.tokens[0]?.clean.strings ?? [], heads: headGroups(result.model?.config) });
  const lines: string[] = [];
  for (const f of facets) {
    lines.push(['facet', `${f.rowAxis}\\${f.colAxis}`, ...f.colLabels].map(csvField).join(','));
    f.values.forEach((row, r) => {
      lines.push([f.title, f.rowLabels[r] ?? '', ...row.map((v) => (v === null ? '' : Number.isFinite(v) ? String(v) : 'NaN'))].map(csvField).join(','));
    });
  }
  return `${lines.join('\n')}\n`;
}
