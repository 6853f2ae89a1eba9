/**
 * How a sweep's flat values become 2-D heatmaps, shared by the webview (bundled for the browser) and the
 * PNG export (Node), so that both show the same cells under the same labels. Pure: no Node or DOM imports.
 *
 * The conventions follow TransformerLens's "Activation Patching" notebook:
 *   [L, P]           rows layers 'L0'..,            cols positions
 *   [L, H]           rows layers,                   cols heads 'H0'..
 *   [L, P, H]        rows 'LxHy' (layer-major),     cols positions
 *   [L, H, dest]     rows 'LxHy',                   cols dest positions
 *   [L, H, dest, src] one facet per 'LxHy',         rows dest positions, cols src positions
 *   [component, ...]  one facet per component, each laid out as above.
 *
 * Position labels are `tok_i` as in the notebook, with whitespace made visible (see tokenLabel).
 */
import type { SweepResult } from '../protocol/result';
import { tokenText } from './resultText';

export interface FacetCell {
  /** The full index into the sweep (one entry per axis) of this cell. */
  readonly index: number[];
}

export interface Facet {
  readonly title: string;
  readonly rowAxis: string;
  readonly colAxis: string;
  readonly rowLabels: string[];
  readonly colLabels: string[];
  /** [row][col] */
  readonly values: number[][];
  readonly cells: FacetCell[][];
  /** Which axis is token positions, so hovering it can light up a token; for dest×src facets, 'col' (src). */
  readonly posAxis: 'col' | 'row' | null;
  /** Set on dest×src facets, whose rows (dest) are token positions too. */
  readonly rowsArePositions?: boolean;
}

export interface LayoutLabels {
  /** Clean token strings of pair 0, one per position. */
  readonly tokens: string[];
}

const MAX_TOKEN_CHARS = 16;

/**
 * A token as an axis label. Spaces become '␣' (U+2423) because GPT-2 tokens mostly start with one and
 * ' Mary' vs 'Mary' is exactly the difference a reader needs to see; newlines and tabs become '↵' and
 * '⇥'; other control characters are escaped; long tokens are shortened with '…'.
 */
export function tokenLabel(token: string | undefined, index: number): string {
  if (token === undefined) return `_${index}`;
  let s = tokenText(token);
  const chars = Array.from(s);
  if (chars.length > MAX_TOKEN_CHARS) s = chars.slice(0, MAX_TOKEN_CHARS - 1).join('') + '…';
  return `${s}_${index}`;
}

const layerLabels = (n: number): string[] => Array.from({ length: n }, (_, i) => `L${i}`);
const headLabels = (n: number): string[] => Array.from({ length: n }, (_, i) => `H${i}`);
const posLabels = (n: number, tokens: string[]): string[] => Array.from({ length: n }, (_, i) => tokenLabel(tokens[i], i));
const layerHeadLabels = (l: number, h: number): string[] =>
  Array.from({ length: l * h }, (_, i) => `L${Math.floor(i / h)}H${i % h}`);

function strides(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/** A facet whose cell [r][c] sits at the full index `at(r, c)`. */
function buildFacet(
  sweep: SweepResult,
  base: Omit<Facet, 'values' | 'cells'>,
  at: (r: number, c: number) => number[],
): Facet {
  const st = strides(sweep.shape);
  const values: number[][] = [];
  const cells: FacetCell[][] = [];
  for (let r = 0; r < base.rowLabels.length; r++) {
    const vr: number[] = [];
    const cr: FacetCell[] = [];
    for (let c = 0; c < base.colLabels.length; c++) {
      const index = at(r, c);
      let flat = 0;
      for (let k = 0; k < index.length; k++) flat += index[k] * st[k];
      // A result file that is short of values shows the gap as NaN (grey) rather than reading garbage.
      vr.push(flat < sweep.values.length ? (sweep.values[flat] ?? NaN) : NaN);
      cr.push({ index });
    }
    values.push(vr);
    cells.push(cr);
  }
  return { ...base, values, cells };
}

/** Lays out the axes after an optional leading prefix (the component index of *_every sweeps). */
function layoutAxes(
  sweep: SweepResult,
  axes: string[],
  shape: number[],
  prefix: number[],
  titlePrefix: string,
  tokens: string[],
): Facet[] {
  const key = axes.join(',');
  const title = (t: string): string => (titlePrefix && t ? `${titlePrefix} ${t}` : titlePrefix || t);
  switch (key) {
    case 'layer,pos':
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer', colAxis: 'pos', rowLabels: layerLabels(shape[0]), colLabels: posLabels(shape[1], tokens), posAxis: 'col' },
          (r, c) => [...prefix, r, c],
        ),
      ];
    case 'layer,head':
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer', colAxis: 'head', rowLabels: layerLabels(shape[0]), colLabels: headLabels(shape[1]), posAxis: null },
          (r, c) => [...prefix, r, c],
        ),
      ];
    case 'layer,pos,head': {
      const h = shape[2];
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer·head', colAxis: 'pos', rowLabels: layerHeadLabels(shape[0], h), colLabels: posLabels(shape[1], tokens), posAxis: 'col' },
          (r, c) => [...prefix, Math.floor(r / h), c, r % h],
        ),
      ];
    }
    case 'layer,head,dest_pos': {
      const h = shape[1];
      return [
        buildFacet(
          sweep,
          { title: title(''), rowAxis: 'layer·head', colAxis: 'dest_pos', rowLabels: layerHeadLabels(shape[0], h), colLabels: posLabels(shape[2], tokens), posAxis: 'col' },
          (r, c) => [...prefix, Math.floor(r / h), r % h, c],
        ),
      ];
    }
    case 'layer,head,dest_pos,src_pos': {
      const out: Facet[] = [];
      for (let l = 0; l < shape[0]; l++) {
        for (let h = 0; h < shape[1]; h++) {
          out.push(
            buildFacet(
              sweep,
              {
                title: title(`L${l}H${h}`),
                rowAxis: 'dest_pos',
                colAxis: 'src_pos',
                rowLabels: posLabels(shape[2], tokens),
                colLabels: posLabels(shape[3], tokens),
                posAxis: 'col',
                rowsArePositions: true,
              },
              (r, c) => [...prefix, l, h, r, c],
            ),
          );
        }
      }
      return out;
    }
    default:
      return [genericFacet(sweep, axes, shape, prefix, title(''), tokens)];
  }
}

/**
 * Shapes the catalogue does not know (a newer engine, a hand-edited file): rows are all leading axes
 * flattened row-major, columns the last axis, so nothing is hidden even if the picture is not ideal.
 */
function genericFacet(sweep: SweepResult, axes: string[], shape: number[], prefix: number[], title: string, tokens: string[]): Facet {
  const axisLabels = (name: string, n: number): string[] =>
    name === 'layer' ? layerLabels(n) : name === 'head' ? headLabels(n) : /pos/.test(name) ? posLabels(n, tokens) : Array.from({ length: n }, (_, i) => `${i}`);
  if (shape.length === 0) {
    return buildFacet(sweep, { title, rowAxis: '', colAxis: '', rowLabels: [''], colLabels: [''], posAxis: null }, () => [...prefix]);
  }
  const last = shape.length - 1;
  const lead = shape.slice(0, last);
  const rowsN = lead.reduce((a, b) => a * b, 1);
  const leadStrides = strides(lead);
  const unflatten = (r: number): number[] => lead.map((n, k) => Math.floor(r / leadStrides[k]) % n);
  const rowLabels =
    lead.length === 1
      ? axisLabels(axes[0], lead[0])
      : Array.from({ length: rowsN }, (_, r) => unflatten(r).map((v, k) => `${axes[k] ?? k}${v}`).join(' '));
  const colName = axes[last] ?? '';
  return buildFacet(
    sweep,
    {
      title,
      rowAxis: lead.length === 0 ? '' : axes.slice(0, last).join('·'),
      colAxis: colName,
      rowLabels: lead.length === 0 ? [''] : rowLabels,
      colLabels: axisLabels(colName, shape[last]),
      posAxis: /pos/.test(colName) ? 'col' : null,
    },
    (r, c) => [...prefix, ...unflatten(r), c],
  );
}

/** The heatmaps of one sweep, in reading order. */
export function layoutSweep(sweep: SweepResult, labels: LayoutLabels): Facet[] {
  const axes = sweep.axes;
  if (axes[0] === 'component') {
    const n = sweep.shape[0] ?? 0;
    const out: Facet[] = [];
    for (let k = 0; k < n; k++) {
      const name = sweep.components?.[k] ?? `component ${k}`;
      out.push(...layoutAxes(sweep, axes.slice(1), sweep.shape.slice(1), [k], name, labels.tokens));
    }
    return out;
  }
  return layoutAxes(sweep, axes, sweep.shape, [], '', labels.tokens);
}

/**
 * How many facets go side by side: the components of *_every sweeps in one row (as the notebook's
 * facet_col), dest×src facets with one row per layer and one column per head.
 */
export function facetColumns(sweep: SweepResult, facetCount: number): number {
  const axes = sweep.axes[0] === 'component' ? sweep.axes.slice(1) : sweep.axes;
  const shape = sweep.axes[0] === 'component' ? sweep.shape.slice(1) : sweep.shape;
  if (axes.join(',') === 'layer,head,dest_pos,src_pos' && sweep.axes[0] !== 'component') return Math.max(1, Math.min(facetCount, shape[1]));
  return Math.max(1, facetCount);
}

/** Half-width of the colour scale: max |v| over finite values, or `fixed`; never 0, so colours stay defined. */
export function symmetricRange(values: readonly (number | null)[], fixed?: number): number {
  if (fixed !== undefined && Number.isFinite(fixed) && fixed !== 0) return Math.abs(fixed);
  let m = 0;
  for (const v of values) if (v !== null && Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m > 0 ? m : 1;
}

/**
 * ColorBrewer RdBu reversed (plotly's RdBu_r): dark blue at −range, near-white at 0, dark red at +range.
 * The notebook's point is "red restores the clean behaviour", hence positive = red.
 */
const RDBU_R: [number, number, number][] = [
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

/** Grey sits outside the scale, so a missing value (NaN) is never read as a small effect. */
export const NAN_COLOR: [number, number, number] = [150, 150, 150];

export function divergingColor(v: number, range: number): [number, number, number] {
  if (Number.isNaN(v)) return [...NAN_COLOR];
  const r = range > 0 && Number.isFinite(range) ? range : 1;
  const t = Math.max(-1, Math.min(1, v / r));
  const x = ((t + 1) / 2) * (RDBU_R.length - 1);
  const i = Math.min(RDBU_R.length - 2, Math.floor(x));
  const f = x - i;
  const a = RDBU_R[i];
  const b = RDBU_R[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)) as [number, number, number];
}
