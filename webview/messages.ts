/**
 * Validation of what arrives by postMessage. The host is trusted code, but the result it forwards is a
 * file from the workspace that anyone may have edited, so every field the panel reads is checked here
 * and the rest of the webview can rely on the types.
 */
import type { AttributionInfo, PatchResult, RunStatus, SweepResult, SweepVerification } from '../src/protocol/result';
import { ABLATION_NAMES, type Ablation, type Direction, DIRECTION_NAMES, plotProblem, type PlotSpec, type ResultSweepName } from '../src/protocol/spec';
import type { HostToWebview, WebviewState } from '../src/protocol/webviewMessages';

/** Beyond this a sweep would stall the panel; no sweep of a model that fits in memory comes near it. */
export const MAX_SWEEP_CELLS = 1 << 22;

const RUN_STATUSES: readonly RunStatus[] = ['done', 'cancelled', 'failed'];

/** A showResult whose result has passed validation, plus what had to be dropped from it. */
export interface ShownResult {
  readonly resultPath: string;
  readonly result: PatchResult;
  /** The sweeps that can be drawn, in the result's order. */
  readonly sweeps: readonly ResultSweepName[];
  /** Clean token strings of pair 0 (the axis labels). */
  readonly tokens: readonly string[];
  /** Parts of the result that were unreadable and are not shown, as sentences for the panel. */
  readonly problems: readonly string[];
  /** The colour scale chosen for this run earlier (see HostToWebview), if any. */
  readonly plot?: PlotSpec;
}

export type ParsedHostMessage = { readonly type: 'showResult'; readonly shown: ShownResult } | Exclude<HostToWebview, { type: 'showResult' }>;

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isStringArray = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

function reject(what: string): undefined {
  console.warn(`PatchLens webview: ignored a message: ${what}`);
  return undefined;
}

/**
 * A sweep as the panel needs it, or a reason. null is an index the model does not have (drawn blank);
 * anything else that is not a number makes the sweep unreadable.
 */
export function parseSweep(x: unknown): SweepResult | string {
  if (!isObject(x)) return 'not an object';
  const { shape, axes, values, components, labels } = x;
  if (!Array.isArray(shape) || !shape.every(isIndex)) return 'shape is not a list of sizes';
  if (!isStringArray(axes) || axes.length !== shape.length) return 'axes do not match the shape';
  const n = shape.reduce((a: number, b: number) => a * b, 1);
  if (n > MAX_SWEEP_CELLS) return `${n} cells is more than the panel draws (${MAX_SWEEP_CELLS})`;
  if (!Array.isArray(values) || values.length !== n) return `expected ${n} values`;
  const out = new Array<number | null>(n);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (typeof v === 'number' || v === null) out[i] = v;
    else return `value ${i} is not a number`;
  }
  if (components !== undefined && !isStringArray(components)) return 'components is not a list of names';
  const verification = parseVerification(x.verification, n);
  if (typeof verification === 'string') return verification;
  if (labels !== undefined && !isStringArray(labels)) return 'labels is not a list of names';
  if (x.receivers !== undefined && !isStringArray(x.receivers)) return 'receivers is not a list of names';
  const set = x.senderSet;
  if (set !== undefined && !(isObject(set) && isStringArray(set.senders) && typeof set.value === 'number')) return 'senderSet is not {senders, value}';
  return {
    shape: [...shape],
    axes: [...axes],
    values: out,
    ...(components !== undefined ? { components: [...components] } : {}),
    ...(labels !== undefined ? { labels: [...labels] } : {}),
    ...(verification ? { verification } : {}),
    ...(x.receivers !== undefined ? { receivers: [...(x.receivers as string[])] } : {}),
    ...(set !== undefined ? { senderSet: { senders: [...(set as { senders: string[] }).senders], value: (set as { value: number }).value } } : {}),
  };
}

/** An attribution run's verified cells (absent: none); a malformed one makes the sweep unreadable. */
function parseVerification(x: unknown, n: number): SweepVerification | undefined | string {
  if (x === undefined) return undefined;
  if (!isObject(x) || !Array.isArray(x.cells)) return 'verification.cells is not a list';
  const cells: SweepVerification['cells'] = [];
  for (const c of x.cells) {
    if (!isObject(c) || !isIndex(c.index) || c.index >= n || typeof c.estimate !== 'number' || typeof c.exact !== 'number' || (c.chosen !== 'top' && c.chosen !== 'random')) {
      return 'a verified cell is not {index, estimate, exact, chosen}';
    }
    cells.push({ index: c.index, estimate: c.estimate, exact: c.exact, chosen: c.chosen });
  }
  const spearman = typeof x.spearman === 'number' ? x.spearman : null;
  const m = x.largestMiss;
  const largestMiss =
    isObject(m) && isIndex(m.index) && typeof m.estimate === 'number' && typeof m.exact === 'number' ? { index: m.index, estimate: m.estimate, exact: m.exact } : null;
  return { cells, spearman, largestMiss };
}

/** An attribution run's description, kept only when it reads as one. */
function parseAttribution(x: unknown): AttributionInfo | undefined {
  if (!isObject(x) || (x.method !== 'atp' && x.method !== 'atp_star') || (x.direction !== 'denoising' && x.direction !== 'noising')) return undefined;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return {
    method: x.method,
    direction: x.direction,
    forwardEquivalents: num(x.forwardEquivalents),
    verifyForwardEquivalents: num(x.verifyForwardEquivalents),
    ...(isIndex(x.verifyTop) ? { verifyTop: x.verifyTop } : {}),
  };
}

const finiteOrNaN = (x: unknown): number | undefined => (typeof x === 'number' ? x : x === null ? NaN : undefined);

function parseShowResult(m: Record<string, unknown>): ParsedHostMessage | undefined {
  const { resultPath, result: r } = m;
  if (typeof resultPath !== 'string' || resultPath === '') return reject('showResult without a resultPath');
  if (!isObject(r)) return reject('showResult without a result');
  if (typeof r.name !== 'string') return reject('result.name is not a string');
  if (typeof r.status !== 'string' || !RUN_STATUSES.includes(r.status as RunStatus)) return reject('result.status is not done/cancelled/failed');
  if (r.message !== undefined && typeof r.message !== 'string') return reject('result.message is not a string');
  if (typeof r.metric !== 'string') return reject('result.metric is not a string');
  if (!isObject(r.model) || typeof r.model.id !== 'string') return reject('result.model.id is not a string');
  if (r.model.provider !== undefined && typeof r.model.provider !== 'string') return reject('result.model.provider is not a string');
  if (!Array.isArray(r.tokens)) return reject('result.tokens is not a list');
  if (!isObject(r.sweeps)) return reject('result.sweeps is not an object');
  let baselines: PatchResult['baselines'];
  if (r.baselines !== undefined) {
    const b = r.baselines;
    const clean = isObject(b) ? finiteOrNaN(b.clean) : undefined;
    // An ablation run has no corrupted baseline.
    const corrupted = isObject(b) && b.corrupted !== undefined ? finiteOrNaN(b.corrupted) : null;
    if (clean === undefined || corrupted === undefined) return reject('result.baselines are not numbers');
    baselines = corrupted === null ? { clean } : { clean, corrupted };
  }
  const problems: string[] = [];
  const direction = r.direction === undefined || (DIRECTION_NAMES as readonly unknown[]).includes(r.direction) ? (r.direction as Direction | undefined) : undefined;
  const ablation = r.ablation === undefined || (ABLATION_NAMES as readonly unknown[]).includes(r.ablation) ? (r.ablation as Ablation | undefined) : undefined;
  if (direction === undefined && r.direction !== undefined) problems.push("The run's direction could not be read; the colours assume denoising.");
  if (ablation === undefined && r.ablation !== undefined) problems.push("The run's ablation could not be read; the colours assume denoising.");

  const first = r.tokens[0];
  const strings = isObject(first) && isObject(first.clean) ? first.clean.strings : undefined;
  let tokens: string[] = [];
  if (isStringArray(strings)) tokens = [...strings];
  else if (r.tokens.length > 0) problems.push('The token strings could not be read; positions are shown by number.');

  const sweeps: Partial<Record<ResultSweepName, SweepResult>> = {};
  const names: ResultSweepName[] = [];
  for (const [name, raw] of Object.entries(r.sweeps)) {
    if (raw === undefined || raw === null) continue;
    const s = parseSweep(raw);
    if (typeof s === 'string') {
      console.warn(`PatchLens webview: sweep '${name}' not shown: ${s}`);
      problems.push(`Sweep ${name} could not be read (${s}).`);
      continue;
    }
    // Names outside today's catalogue (a newer engine) are still drawn, with the generic layout.
    sweeps[name as ResultSweepName] = s;
    names.push(name as ResultSweepName);
  }
  let plot: PlotSpec | undefined;
  if (m.plot !== undefined) {
    const problem = plotProblem(m.plot);
    if (problem) console.warn(`PatchLens webview: the remembered colour scale is ignored: ${problem.message}`);
    else plot = m.plot as PlotSpec;
  }
  const attribution = parseAttribution(r.attribution);
  let patchSets: PatchResult['patchSets'];
  if (r.patchSets !== undefined) {
    const sets = Array.isArray(r.patchSets) ? r.patchSets : [];
    const ok = sets.filter(
      (x): x is NonNullable<PatchResult['patchSets']>[number] =>
        isObject(x) && typeof x.name === 'string' && isStringArray(x.components) && (typeof x.value === 'number' || x.value === null),
    );
    if (!Array.isArray(r.patchSets) || ok.length !== sets.length) problems.push('Some patch sets could not be read and are not shown.');
    patchSets = ok.map((x) => ({ name: x.name, components: [...x.components], value: x.value }));
  }
  const { direction: _d, ablation: _a, patchSets: _p, ...rest } = r as unknown as PatchResult;
  const result: PatchResult = {
    ...rest,
    baselines,
    sweeps,
    ...(direction ? { direction } : {}),
    ...(ablation ? { ablation } : {}),
    ...(patchSets ? { patchSets } : {}),
    ...(attribution ? { attribution } : {}),
  };
  return { type: 'showResult', shown: { resultPath, result, sweeps: names, tokens, problems, ...(plot ? { plot } : {}) } };
}

/** The message as the panel can use it, or undefined (with a console warning) when it is not one. */
export function parseHostMessage(data: unknown): ParsedHostMessage | undefined {
  if (!isObject(data) || typeof data.type !== 'string') return reject('no type');
  switch (data.type) {
    case 'showResult':
      return parseShowResult(data);
    case 'highlightPosition':
      if (data.pos === null) return { type: 'highlightPosition', pos: null };
      if (!isIndex(data.pos)) return reject('highlightPosition.pos is not a position or null');
      return { type: 'highlightPosition', pos: data.pos };
    case 'requestPng':
      return { type: 'requestPng' };
    default:
      return reject(`unknown type '${data.type}'`);
  }
}

/** What vscode.getState() returned, if it is a state this panel wrote. */
export function parseState(x: unknown): WebviewState | undefined {
  if (!isObject(x) || typeof x.resultPath !== 'string') return undefined;
  return typeof x.sweep === 'string' ? { resultPath: x.resultPath, sweep: x.sweep as ResultSweepName } : { resultPath: x.resultPath };
}
