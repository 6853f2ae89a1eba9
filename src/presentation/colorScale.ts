/**
 * What a colour means: the one colour scale of a sweep, shared by the panel, the PNG export and the
 * demo. A reader expects "no effect" to be white and "restores the clean behaviour" to be the
 * strongest red, so the defaults follow the metric (the seed notebook set them per plot by hand):
 *
 *   normalized_logit_diff                   white at 0 (the corrupted baseline), ends ±max(1, max |v|)
 *   logit_diff, answer_logprob, answer_prob white at the corrupted baseline, the clean baseline at the
 *                                           red end, the blue end as far below; a value further out
 *                                           widens its side (never clipped), so clean stays full red
 *   kl_divergence                           sequential: red at 0 (the clean distribution), pale at the
 *                                           corrupted run's KL or the largest value
 *
 * That is denoising. In general white is the baseline of the run the patches went into ("no effect": the
 * corrupted run when denoising, the clean run when noising or ablating) and full red the baseline of
 * the run the values came from (the clean run when denoising, the corrupted run when noising); an
 * ablation has no such run, and red lies the way that breaks the behaviour (lower, or higher KL).
 *
 * A spec's `plot` (or the panel's colour controls) moves the centre and the ends; values beyond a
 * fixed end are drawn at the end's colour and counted, so clipping is never silent. Pure: no DOM, no Node.
 */
import { type Ablation, type Direction, type MetricName, patchFlow, type PlotCenter, type PlotEnd, plotProblem, type PlotSpec } from '../protocol/spec';
import { shortValue } from './resultText';

export type Rgb = [number, number, number];

export interface ScaleTick {
  readonly value: number;
  readonly label: string;
  /** Baselines are named on the colour bar; ends and a centre that is not a baseline show their value. */
  readonly kind: 'clean' | 'corrupted' | 'center' | 'end';
}

export interface ColorScale {
  readonly kind: 'diverging' | 'sequential';
  /** Bottom and top of the colour bar, in the metric's units; zmin < zmax. */
  readonly zmin: number;
  readonly zmax: number;
  /** The value drawn white: the centre of a diverging scale, the pale end of a sequential one. */
  readonly center: number;
  /** The end on the source baseline's side, drawn the strongest red. */
  readonly redEnd: 'zmin' | 'zmax';
  /** "No effect": the unpatched run's baseline when known, else the centre. Effects are measured from here. */
  readonly neutral: number;
  /**
   * The baselines in the metric's units (1 and 0 for the normalized logit difference): `none` the
   * unpatched run's (no effect), `full` the source run's (the whole effect), each with its run's name.
   */
  readonly baselines?: Anchors;
  readonly ticks: readonly ScaleTick[];
  /** Values outside [zmin, zmax] (only fixed ends can leave any), drawn at the end's colour. */
  readonly clipped: { readonly below: number; readonly above: number };
  /** How to read the colours, in one or two sentences. */
  readonly legend: string;
  /** Settings that could not be applied, and clipped values, as sentences the reader must not miss. */
  readonly notes: readonly string[];
}

/** The baselines a scale is built around, in the metric's units. */
export interface Anchors {
  readonly none: number;
  readonly noneName: 'clean' | 'corrupted';
  /** Absent for an ablation: no run has the ablated behaviour. */
  readonly full?: number;
  readonly fullName?: 'clean' | 'corrupted';
}

export interface ScaleInput {
  readonly metric: MetricName | string;
  /** The result's raw baselines (un-normalized for normalized_logit_diff); absent when the run failed early. */
  readonly baselines?: { readonly clean: number; readonly corrupted?: number };
  /** Which way the patches went (absent: denoising), or the ablation that made them. */
  readonly direction?: Direction;
  readonly ablation?: Ablation;
  /** The sweep's values; null (an index the model lacks) and NaN take no part. */
  readonly values: readonly (number | null)[];
  readonly plot?: PlotSpec;
}

/**
 * ColorBrewer RdBu reversed (plotly's RdBu_r): dark blue at t = −1, near-white at 0, dark red at +1.
 * A sequential scale uses the red half.
 */
const RDBU_R: Rgb[] = [
  [5, 48, 97],
  [33, 102, 172],
  [67, 147, 195],
  [146, 197, 222],
  [209, 229, 240],
  [247, 247, 247],
  [253, 219, 199],
  [244, 165, 130],
  [214, 96, 77],
  [178, 24, 43],
  [103, 0, 31],
];

/** Grey sits outside the scale, so a missing measurement (NaN) is never read as a small effect. */
export const NAN_COLOR: Rgb = [150, 150, 150];

/** The colour at t ∈ [−1, 1] (−1 blue end, 0 white, +1 red end). */
export function rampColor(t: number): Rgb {
  const x = ((Math.max(-1, Math.min(1, t)) + 1) / 2) * (RDBU_R.length - 1);
  const i = Math.min(RDBU_R.length - 2, Math.floor(x));
  const f = x - i;
  const a = RDBU_R[i]!;
  const b = RDBU_R[i + 1]!;
  return [0, 1, 2].map((k) => Math.round(a[k]! + (b[k]! - a[k]!) * f)) as Rgb;
}

const redValue = (s: ColorScale): number => (s.redEnd === 'zmax' ? s.zmax : s.zmin);
const blueValue = (s: ColorScale): number => (s.redEnd === 'zmax' ? s.zmin : s.zmax);

/** Where `v` sits between white (0) and the red (+1) or blue (−1) end; clamped. */
export function scalePosition(s: ColorScale, v: number): number {
  const c = s.center;
  const red = redValue(s) - c;
  if (s.kind === 'sequential') return red === 0 ? 0 : Math.max(0, Math.min(1, (v - c) / red));
  const d = v - c;
  if (d === 0) return 0;
  if (d * red > 0) return Math.min(1, d / red);
  const blue = blueValue(s) - c;
  // A centre at an end leaves that side no width: anything past it is at the end's colour.
  if (blue === 0 || d * blue < 0) return d * red > 0 ? 1 : -1;
  return -Math.min(1, d / blue);
}

/** The colour of a value: null (an index the model lacks) has none and is drawn blank. */
export function scaleColor(s: ColorScale, v: number | null): Rgb | null {
  if (v === null) return null;
  if (Number.isNaN(v)) return [...NAN_COLOR];
  return rampColor(scalePosition(s, v));
}

/**
 * How far a value goes from no effect (0) to the source's behaviour (1): the fraction of the clean
 * behaviour restored when denoising, of the corrupted behaviour reached when noising.
 */
export function fractionOfClean(s: ColorScale, v: number): number | undefined {
  const b = s.baselines;
  if (!b || b.full === undefined || b.full === b.none || !Number.isFinite(v)) return undefined;
  return (v - b.none) / (b.full - b.none);
}

/** `92% of clean` (denoising) or `92% to corrupted` (noising), for tooltips and the strongest-effects list. */
export function fractionText(s: ColorScale, v: number): string | undefined {
  const f = fractionOfClean(s, v);
  if (f === undefined) return undefined;
  const pct = Math.abs(f) >= 10 ? f.toExponential(1).replace('e+', 'e') : String(Math.round(f * 100));
  const to = s.baselines!.fullName === 'clean' ? 'of clean' : 'to corrupted';
  return Math.abs(f) >= 10 ? `${pct}× ${s.baselines!.fullName}` : `${pct}% ${to}`;
}

const finite = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x);

/** The baselines in the units the sweep's values are in, named by their runs. */
function metricAnchors(input: ScaleInput): Anchors | undefined {
  const raw = input.baselines;
  if (!raw || !finite(raw.clean)) return undefined;
  const flow = patchFlow(input.direction, input.ablation);
  const fromRun = flow.from === 'clean' || flow.from === 'corrupted' ? flow.from : undefined;
  const value = (name: 'clean' | 'corrupted') => (name === 'clean' ? raw.clean : raw.corrupted);
  if (fromRun && !finite(value(fromRun))) return undefined;
  if (input.metric === 'normalized_logit_diff') return { none: 0, noneName: flow.into, ...(fromRun ? { full: 1, fullName: fromRun } : {}) };
  return { none: value(flow.into)!, noneName: flow.into, ...(fromRun ? { full: value(fromRun)!, fullName: fromRun } : {}) };
}

const endName = (e: PlotEnd | PlotCenter): string => (typeof e === 'number' ? String(e) : `"${e}"`);

export function colorScale(input: ScaleInput): ColorScale {
  const { metric, plot = {} } = input;
  const b = metricAnchors(input);
  const notes: string[] = [];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of input.values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const hasData = lo <= hi;
  const named = (which: 'clean' | 'corrupted'): number | undefined => (b?.noneName === which ? b.none : b?.fullName === which ? b.full : undefined);

  // A baseline keyword without that baseline (a run that failed before computing them, an ablation's missing corrupted run) falls back to auto.
  const baselineValue = (key: string, which: 'clean' | 'corrupted'): number | undefined => {
    const v = named(which);
    if (v !== undefined) return v;
    notes.push(`plot.${key} is "${which}", but this run has no ${b ? `${which} ` : ''}baseline; ${key === 'center' ? 'centred on 0' : 'automatic end used'}.`);
    return undefined;
  };
  const endValue = (key: 'zmin' | 'zmax', e: PlotEnd | undefined): number | undefined =>
    e === undefined || e === 'auto' ? undefined : typeof e === 'number' ? e : baselineValue(key, e);

  let center: number | undefined;
  const c = plot.center;
  if (c === undefined) center = metric === 'kl_divergence' ? undefined : metric === 'normalized_logit_diff' ? 0 : (b?.none ?? 0);
  else if (c === 'zero') center = 0;
  else if (c === 'corrupted' || c === 'clean') center = baselineValue('center', c) ?? 0;
  else center = c;
  const kind: ColorScale['kind'] = center === undefined ? 'sequential' : 'diverging';

  // Red lies towards the source's baseline. Without one (an ablation), towards a broken behaviour: lower
  // values, or a higher KL divergence; KL is lower when closer to clean, the other metrics higher.
  const isKl = metric === 'kl_divergence';
  const ref = center ?? b?.none;
  const full = b?.full;
  const dirFromBaselines = full !== undefined && ref !== undefined && full !== ref ? Math.sign(full - ref) : full !== undefined && full !== b!.none ? Math.sign(full - b!.none) : 0;
  const redUp = dirFromBaselines !== 0 ? dirFromBaselines > 0 : input.ablation ? isKl : !isKl;

  let fixedMin = endValue('zmin', plot.zmin);
  let fixedMax = endValue('zmax', plot.zmax);
  const conflict = (why: string): void => {
    notes.push(`${why}; automatic ends used.`);
    fixedMin = undefined;
    fixedMax = undefined;
  };
  if (fixedMin !== undefined && fixedMax !== undefined && !(fixedMin < fixedMax)) {
    conflict(`plot.zmin (${endName(plot.zmin!)} = ${shortValue(fixedMin)}) is not below plot.zmax (${endName(plot.zmax!)} = ${shortValue(fixedMax)})`);
  } else if (center !== undefined && fixedMin !== undefined && fixedMin > center) {
    conflict(`plot.zmin (${endName(plot.zmin!)} = ${shortValue(fixedMin)}) is above the centre (${shortValue(center)})`);
  } else if (center !== undefined && fixedMax !== undefined && fixedMax < center) {
    conflict(`plot.zmax (${endName(plot.zmax!)} = ${shortValue(fixedMax)}) is below the centre (${shortValue(center)})`);
  }

  const baselineValues = b ? [b.none, ...(b.full !== undefined ? [b.full] : [])] : [];
  // Everything an automatic end must show: the values and the baselines.
  const points = [...(hasData ? [lo, hi] : []), ...baselineValues];
  let zmin: number;
  let zmax: number;
  if (center !== undefined) {
    // Symmetric about the centre: each side reaches at least as far as the furthest baseline, so the
    // whole effect is full red. A value further out widens its own side only (the normalized metric's
    // ±max(1, max |v|) widens both, as does a scale with one baseline), and a fixed end sets its side,
    // mirrored by an automatic other side.
    const below = Math.max(0, ...points.map((x) => center! - x));
    const above = Math.max(0, ...points.map((x) => x - center!));
    const reach = Math.max(0, ...baselineValues.map((x) => Math.abs(x - center!)));
    const both = metric === 'normalized_logit_diff' || full === undefined ? Math.max(below, above) : reach;
    const half = (side: number): number => Math.max(both, side) || 1;
    // Rounding in center ± half must not leave the point that set the width (a baseline) a hair outside.
    zmin = fixedMin ?? Math.min(center - (fixedMax !== undefined ? Math.max(fixedMax - center, below) : half(below)), ...points);
    zmax = fixedMax ?? Math.max(center + (fixedMin !== undefined ? Math.max(center - fixedMin, above) : half(above)), ...points);
    if (zmin === zmax) {
      zmin -= 1;
      zmax += 1;
    }
  } else {
    const pLo = Math.min(0, ...points);
    const pHi = Math.max(...points, pLo);
    zmin = fixedMin ?? (fixedMax === undefined || pLo < fixedMax ? pLo : fixedMax - 1);
    zmax = fixedMax ?? (pHi > zmin ? pHi : zmin + 1);
  }
  const redEnd: ColorScale['redEnd'] = redUp ? 'zmax' : 'zmin';
  const white = center ?? (redUp ? zmin : zmax);

  let below = 0;
  let above = 0;
  for (const v of input.values) {
    if (v === null || !Number.isFinite(v)) continue;
    if (v < zmin) below++;
    else if (v > zmax) above++;
  }
  if (below + above > 0) {
    const parts = [
      below ? `${below} below ${shortValue(zmin)} (lowest ${shortValue(lo)})` : '',
      above ? `${above} above ${shortValue(zmax)} (highest ${shortValue(hi)})` : '',
    ].filter(Boolean);
    notes.push(`${below + above} cell${below + above === 1 ? '' : 's'} lie beyond the colour range: ${parts.join(', ')}; they are drawn at its end${below && above ? 's' : ''}.`);
  }

  const ticks: ScaleTick[] = [
    { value: zmax, label: `${above ? '≥ ' : ''}${shortValue(zmax)}`, kind: 'end' },
    { value: zmin, label: `${below ? '≤ ' : ''}${shortValue(zmin)}`, kind: 'end' },
  ];
  for (const which of ['clean', 'corrupted'] as const) {
    const v = named(which);
    if (v !== undefined && v >= zmin && v <= zmax) ticks.push({ value: v, label: `${which} ${shortValue(v)}`, kind: which });
  }
  if (center !== undefined && center !== b?.none) ticks.push({ value: center, label: shortValue(center), kind: 'center' });

  return {
    kind,
    zmin,
    zmax,
    center: white,
    redEnd,
    neutral: b?.none ?? white,
    ...(b ? { baselines: b } : {}),
    ticks,
    clipped: { below, above },
    legend: legendFor(kind, metric, center, b, input.ablation),
    notes,
  };
}

function legendFor(kind: ColorScale['kind'], metric: string, center: number | undefined, b: Anchors | undefined, ablation: Ablation | undefined): string {
  const what = metric === 'kl_divergence' ? 'KL divergence from the clean run' : 'value';
  const whole = (a: Anchors) => (a.fullName === 'clean' ? 'the clean behaviour restored' : 'the behaviour as broken as in the corrupted run');
  if (kind === 'sequential') {
    if (!b) return `Red: ${what} 0; pale: the largest.`;
    if (b.full === undefined)
      return `Pale: ${what} ${shortValue(b.none)}, the ${b.noneName} run's: no effect; red: the largest, the ${ablation ?? ''} ablation's strongest effect.`;
    return `Red: ${what} ${shortValue(b.full)}, ${whole(b)}; pale: the ${b.noneName} run's ${shortValue(b.none)} or more, no effect.`;
  }
  const white = center !== undefined && center === b?.none ? `the ${b.noneName} baseline: the patch changes nothing` : `${shortValue(center ?? 0)}`;
  if (!b) return `White: ${white}; red above it, blue below.`;
  if (b.full === undefined) return `White: ${white}. Red: the way the ${ablation ?? ''} ablation breaks the behaviour; blue: the other way.`;
  return `White: ${white}. Red: towards the ${b.fullName} baseline (full red at ${shortValue(b.full)}: ${whole(b)}); blue: away from it.`;
}

/** Where the colour bar's labels go: value → offset from the bar's top, for a bar `height` tall. */
export function tickOffset(s: ColorScale, value: number, height: number): number {
  return ((s.zmax - value) / (s.zmax - s.zmin)) * height;
}

/**
 * The scale of one sweep of a result: the spec's `plot` settings unless `override` (the panel's colour
 * controls) replaces them. A result file is data anyone may edit: unusable settings are set aside and
 * said so in the notes.
 */
export function sweepScale(
  result: Pick<ScaleInput, 'baselines' | 'direction' | 'ablation'> & { readonly metric: string; readonly spec?: { readonly plot?: unknown } },
  values: readonly (number | null)[],
  override?: PlotSpec,
): ColorScale {
  const given = override ?? result.spec?.plot;
  const problem = plotProblem(given);
  const scale = colorScale({
    metric: result.metric,
    ...(result.baselines ? { baselines: result.baselines } : {}),
    ...(result.direction ? { direction: result.direction } : {}),
    ...(result.ablation ? { ablation: result.ablation } : {}),
    values,
    ...(problem ? {} : { plot: given as PlotSpec }),
  });
  return problem ? { ...scale, notes: [`The plot settings are set aside (${problem.message}).`, ...scale.notes] } : scale;
}
