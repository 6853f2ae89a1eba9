/**
 * PNG export of sweep heatmaps (the notebook's `save_imshow`), drawn with the same chart.js matrix
 * charts and the same layout (src/presentation/heatmapLayout.ts) as the webview, so an exported picture
 * shows what the panel showed. Each facet is its own chart on its own canvas; the facets, the title
 * and one colour bar are composed onto a single canvas, because chart.js draws one chart per canvas.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BasicPlatform, CategoryScale, Chart, LinearScale } from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { createCanvas, GlobalFonts } from '@napi-rs/canvas';
import type { Canvas, SKRSContext2D } from '@napi-rs/canvas';
import { facetColumns, layoutSweep, placeFacets } from '../../presentation/heatmapLayout';
import type { Facet } from '../../presentation/heatmapLayout';
import type { PatchResult, SweepResult } from '../../protocol/result';
import type { ResultSweepName } from '../../protocol/spec';
import { summaryParts, sweepTitle } from '../../presentation/resultText';
import { BAR_MARGIN, colorBarWidth, paintColorBar } from '../../presentation/colorBar';
import { type ColorScale, scaleColor, sweepScale } from '../../presentation/colorScale';
import { headGroups } from '../../presentation/heads';
import { facetChartConfig, facetData, facetSizes, type FacetSizes, fontFor } from '../../presentation/heatmapChart';
import { resultStem } from '../../common/resultFile';
import { createNewFile } from '../../common/fileWrite';

export interface RenderOptions {
  /** Upper bound on the image width in pixels (default 4000); cells shrink to fit. */
  width?: number;
  /** Preferred cell edge in pixels (default 28); smaller when the picture would exceed the size cap. */
  cellSize?: number;
  dark?: boolean;
}

/** Where a facet's cells landed in the image, so callers (and tests) can find a cell's pixels. */
export interface FacetGeometry {
  readonly title: string;
  readonly left: number;
  readonly top: number;
  readonly cellWidth: number;
  readonly cellHeight: number;
  readonly rows: number;
  readonly cols: number;
}

export interface SweepImage {
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
  readonly scale: ColorScale;
  readonly facets: FacetGeometry[];
}

/** Centre pixel of cell [row][col] of a facet. */
export function cellCentre(g: FacetGeometry, row: number, col: number): { x: number; y: number } {
  return { x: g.left + (col + 0.5) * g.cellWidth, y: g.top + (row + 0.5) * g.cellHeight };
}

const MAX_SIDE = 4000;
const DEFAULT_CELL = 28;
const PAD = 14;
const GAP_X = 12;
const GAP_Y = 6;
const COLORBAR_GAP = 18;
const LEGEND_FONT = 11;

/**
 * Fonts: @napi-rs/canvas loads the system's fonts itself, but chart.js asks for Helvetica/Arial, which a
 * bare Linux lacks; DejaVu Sans (Debian/Ubuntu package fonts-dejavu-core) covers the '␣' and '↵' the
 * token labels use. Registered explicitly where the file exists so the family name is certain.
 */
const DEJAVU_PATHS = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
];
const DEJAVU_BOLD_PATHS = DEJAVU_PATHS.map((p) => p.replace('DejaVuSans.ttf', 'DejaVuSans-Bold.ttf'));
const FONT_FAMILY = "'DejaVu Sans', 'Helvetica Neue', Helvetica, Arial, 'Segoe UI', sans-serif";

let initialised = false;
function init(): void {
  if (initialised) return;
  initialised = true;
  for (const p of [...DEJAVU_PATHS, ...DEJAVU_BOLD_PATHS]) {
    if (existsSync(p)) GlobalFonts.registerFromPath(p, 'DejaVu Sans');
  }
  Chart.register(MatrixController, MatrixElement, CategoryScale, LinearScale);
  Chart.defaults.font.family = FONT_FAMILY;
}

interface Theme {
  background: string;
  text: string;
  muted: string;
  border: string;
}
const LIGHT: Theme = { background: '#ffffff', text: '#222222', muted: '#555555', border: '#888888' };
const DARK: Theme = { background: '#1e1e1e', text: '#dddddd', muted: '#aaaaaa', border: '#888888' };

/** A facet's sizes plus the title line a facet of a multi-facet sweep carries. */
interface Metrics extends FacetSizes {
  facetTitleH: number;
}

function maxTextWidth(ctx: SKRSContext2D, font: string, texts: string[]): number {
  ctx.font = font;
  let m = 0;
  for (const t of texts) m = Math.max(m, ctx.measureText(t).width);
  return Math.ceil(m);
}

function metricsFor(ctx: SKRSContext2D, facet: Facet, cellW: number, cellH: number, multi: boolean): Metrics {
  const rowW = maxTextWidth(ctx, `${fontFor(cellH)}px ${FONT_FAMILY}`, facet.rowLabels);
  const sizes = facetSizes(cellW, cellH, rowW, (px) => maxTextWidth(ctx, `${px}px ${FONT_FAMILY}`, facet.colLabels));
  return { ...sizes, facetTitleH: multi ? 18 : 0 };
}

interface FacetChart {
  canvas: Canvas;
  chart: Chart;
  chartArea: { left: number; top: number; width: number; height: number };
}

/**
 * A chart.js matrix chart for facets laid out like `facet`; `showX`/`showY` say whether it carries the
 * shared axis labels. Built once per kind and refilled per facet: a dest×src sweep has L×H facets,
 * and constructing a chart each time costs far more than updating one.
 */
function facetChart(facet: Facet, m: Metrics, scale: ColorScale, theme: Theme, showX: boolean, showY: boolean): FacetChart {
  const plotW = facet.colLabels.length * m.cellW;
  const plotH = facet.rowLabels.length * m.cellH;
  const yW = showY ? m.yAxisW : 0;
  const xH = showX ? m.xAxisH : 0;
  const canvas = createCanvas(Math.max(1, yW + plotW), Math.max(1, plotH + xH));
  const config = facetChartConfig(facet, m, { ...theme, font: FONT_FAMILY }, (v) => scaleColor(scale, v), showX, showY);
  // A canvas outside a browser: chart.js must not look for a DOM, and pixels are the canvas's own.
  config.platform = BasicPlatform;
  config.options = { ...config.options, devicePixelRatio: 1 };
  const chart = new Chart(canvas.getContext('2d') as unknown as CanvasRenderingContext2D, config);
  const a = chart.chartArea;
  return { canvas, chart, chartArea: { left: a.left, top: a.top, width: a.width, height: a.height } };
}

/** Renders one sweep of a result; returns the PNG and where each facet's cells are. */
export async function renderSweepImage(result: PatchResult, sweep: ResultSweepName, opts: RenderOptions = {}): Promise<SweepImage> {
  init();
  const data: SweepResult | undefined = result.sweeps[sweep];
  if (!data) throw new Error(`result '${result.name}' has no sweep '${sweep}'`);
  const facets = layoutSweep(data, { tokens: result.tokens[0]?.clean.strings ?? [], heads: headGroups(result.model?.config) });
  if (facets.length === 0) throw new Error(`sweep '${sweep}' of result '${result.name}' is empty`);
  const theme = opts.dark ? DARK : LIGHT;
  const scale = sweepScale(result, data.values);
  const maxW = Math.max(200, Math.min(opts.width ?? MAX_SIDE, MAX_SIDE));
  const maxH = MAX_SIDE;

  const scratch = createCanvas(1, 1).getContext('2d');
  const multi = facets.length > 1;
  const gridCols = Math.min(facets.length, facetColumns(data, facets.length));
  const gridRows = Math.ceil(facets.length / gridCols);
  const places = placeFacets(facets, gridCols);
  // All facets of a sweep have as many rows and columns; their labels may differ (k/v heads).
  const ref = facets[0];
  const rows = ref.rowLabels.length;
  const cols = ref.colLabels.length;
  const widest = facets.reduce((a, f) => (f.rowLabels.join('').length > a.rowLabels.join('').length ? f : a), ref);

  const title = `${result.name} — ${sweepTitle(sweep, data)}`;
  const subtitle = summaryParts(result).join('   ·   ');
  const legend = [scale.legend, ...scale.notes];
  const headerH = 16 + 8 + 12 + 6 + legend.length * (LEGEND_FONT + 5) + 8;
  const barStyle = { text: theme.text, border: theme.border, font: FONT_FAMILY };
  const colorbarW = COLORBAR_GAP + colorBarWidth(scratch, scale, barStyle);

  // Each grid column is as wide as its widest label box plus the cells; each grid row as tall as its
  // cells plus, where a facet carries column labels, those labels.
  const layoutFor = (cellW: number, cellH: number) => {
    const m = metricsFor(scratch, widest, cellW, cellH, multi);
    const colYW = Array.from({ length: gridCols }, (_, c) => (places.some((p) => p.col === c && p.showY) ? m.yAxisW : 0));
    const rowXH = Array.from({ length: gridRows }, (_, r) => (places.some((p) => p.row === r && p.showX) ? m.xAxisH : 0));
    const gridW = colYW.reduce((a, w) => a + w + cols * cellW, 0) + (gridCols - 1) * GAP_X;
    const gridH = rowXH.reduce((a, h) => a + m.facetTitleH + rows * cellH + h, 0) + (gridRows - 1) * GAP_Y;
    return { m, colYW, rowXH, width: PAD + gridW + colorbarW + PAD, height: PAD + headerH + gridH + PAD };
  };
  // Cells start square and shrink on each side separately, so a tall [L·H, P] sweep keeps readable
  // columns instead of shrinking to a sliver; the label boxes depend on the cell size, hence the loop.
  let cellW = Math.max(1, Math.floor(opts.cellSize ?? DEFAULT_CELL));
  let cellH = cellW;
  let lay = layoutFor(cellW, cellH);
  while ((lay.width > maxW && cellW > 1) || (lay.height > maxH && cellH > 1)) {
    if (lay.width > maxW && cellW > 1) {
      const fixedW = lay.width - gridCols * cols * cellW;
      cellW = Math.max(1, Math.min(cellW - 1, Math.floor((maxW - fixedW) / (gridCols * cols))));
    }
    if (lay.height > maxH && cellH > 1) {
      const fixedH = lay.height - gridRows * rows * cellH;
      cellH = Math.max(1, Math.min(cellH - 1, Math.floor((maxH - fixedH) / (gridRows * rows))));
    }
    lay = layoutFor(cellW, cellH);
  }
  const { m } = lay;

  scratch.font = `bold 16px ${FONT_FAMILY}`;
  const titleW = scratch.measureText(title).width;
  scratch.font = `12px ${FONT_FAMILY}`;
  const subtitleW = scratch.measureText(subtitle).width;
  scratch.font = `${LEGEND_FONT}px ${FONT_FAMILY}`;
  const legendW = Math.max(...legend.map((l) => scratch.measureText(l).width));
  const width = Math.ceil(Math.max(lay.width, Math.min(maxW, PAD * 2 + Math.max(titleW, subtitleW, legendW))));
  const height = Math.ceil(lay.height);

  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = theme.background;
  ctx.fillRect(0, 0, width, height);
  ctx.textBaseline = 'top';
  ctx.textAlign = 'left';
  ctx.fillStyle = theme.text;
  ctx.font = `bold 16px ${FONT_FAMILY}`;
  ctx.fillText(title, PAD, PAD);
  ctx.fillStyle = theme.muted;
  ctx.font = `12px ${FONT_FAMILY}`;
  ctx.fillText(subtitle, PAD, PAD + 16 + 8);
  ctx.font = `${LEGEND_FONT}px ${FONT_FAMILY}`;
  legend.forEach((line, i) => ctx.fillText(line, PAD, PAD + 16 + 8 + 12 + 6 + i * (LEGEND_FONT + 5)));

  const plotW = cols * m.cellW;
  const plotH = rows * m.cellH;
  const colLeft: number[] = [];
  for (let c = 0, x = PAD; c < gridCols; c++) {
    colLeft.push(x + lay.colYW[c]!);
    x += lay.colYW[c]! + plotW + GAP_X;
  }
  const rowTop: number[] = [];
  for (let r = 0, y = PAD + headerH; r < gridRows; r++) {
    rowTop.push(y + m.facetTitleH);
    y += m.facetTitleH + plotH + lay.rowXH[r]! + GAP_Y;
  }
  const geometry: FacetGeometry[] = [];
  const charts = new Map<string, FacetChart>();
  for (let i = 0; i < facets.length; i++) {
    const f = facets[i];
    const { row, col, showX, showY } = places[i]!;
    const plotLeft = colLeft[col]!;
    const plotTop = rowTop[row]!;
    // Charts are reused for facets drawn alike: same labels shown, same labels.
    const key = `${showX}/${showY}/${f.rowLabels.join('\u0000')}/${f.colLabels.join('\u0000')}`;
    let fc = charts.get(key);
    if (!fc) {
      fc = facetChart(f, m, scale, theme, showX, showY);
      charts.set(key, fc);
    } else {
      fc.chart.data.datasets[0].data = facetData(f) as never;
      fc.chart.update();
    }
    ctx.drawImage(fc.canvas, plotLeft - fc.chartArea.left, plotTop - fc.chartArea.top);
    if (m.facetTitleH > 0 && f.title) {
      ctx.font = `bold 12px ${FONT_FAMILY}`;
      const tw = ctx.measureText(f.title).width;
      // A title wider than its facet would overwrite its neighbour's; the grid order still identifies it.
      if (tw <= plotW + GAP_X - 2) {
        ctx.fillStyle = theme.text;
        ctx.textAlign = 'center';
        ctx.textBaseline = 'bottom';
        ctx.fillText(f.title, plotLeft + plotW / 2, plotTop - 3);
      }
    }
    geometry.push({
      title: f.title,
      left: plotLeft,
      top: plotTop,
      cellWidth: fc.chartArea.width / f.colLabels.length,
      cellHeight: fc.chartArea.height / f.rowLabels.length,
      rows: f.rowLabels.length,
      cols: f.colLabels.length,
    });
  }

  // Destroying a chart clears its canvas, so only now that every facet has been copied.
  for (const fc of charts.values()) fc.chart.destroy();

  // Colour bar: zmax at the top, as plotly draws it, spanning the first facet row.
  const barLeft = colLeft[gridCols - 1]! + plotW + COLORBAR_GAP;
  const barTop = rowTop[0]! + BAR_MARGIN;
  const barH = Math.max(80, Math.min(plotH, 400)) - 2 * BAR_MARGIN;
  paintColorBar(ctx, scale, barLeft, barTop, barH, barStyle);

  return { png: canvas.toBuffer('image/png'), width, height, scale, facets: geometry };
}

export async function renderSweepPng(result: PatchResult, sweep: ResultSweepName, opts?: RenderOptions): Promise<Buffer> {
  return (await renderSweepImage(result, sweep, opts)).png;
}

/** The suffix of a sweep's PNG after its run's stem: `speaker-2` + `.resid_pre.png`. */
export function pngSuffix(sweep: ResultSweepName): string {
  return `.${sweep}.png`;
}

/**
 * Writes `<stem>.<sweep>.png` beside the result file `<stem>.result.json`, so that a run's pictures carry
 * its result file's (claimed, sanitised) name; returns its path. It is a new file: a file or symlink
 * already there is never written through or replaced (EEXIST).
 */
export async function writeSweepPng(result: PatchResult, sweep: ResultSweepName, resultPath: string, opts?: RenderOptions): Promise<string> {
  const p = join(dirname(resultPath), `${resultStem(resultPath)}${pngSuffix(sweep)}`);
  createNewFile(p, await renderSweepPng(result, sweep, opts));
  return p;
}

/** writeSweepPng for every sweep in the result. */
export async function writeSweepPngs(result: PatchResult, resultPath: string, opts?: RenderOptions): Promise<string[]> {
  const paths: string[] = [];
  for (const sweep of Object.keys(result.sweeps) as ResultSweepName[]) {
    if (result.sweeps[sweep]) paths.push(await writeSweepPng(result, sweep, resultPath, opts));
  }
  return paths;
}
