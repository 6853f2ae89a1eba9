/**
 * The heatmaps of one sweep: one chart.js matrix chart per facet of `layoutSweep`, arranged in the same
 * grid as the PNG export (src/engine/render/heatmapPng.ts), with the shared axis labels only on the
 * outer facets. Chart.js's own event handling is off: the pointer is mapped to a cell here, from each
 * chart's plot area, so hovering and the tooltip follow exactly the cells that were drawn.
 *
 * Each facet element carries data attributes (rows, cols, plot box, cells drawn, highlight drawn):
 * they describe what is on screen for tests and for anyone inspecting the panel.
 */
import { CategoryScale, Chart, LinearScale } from 'chart.js';
import type { Plugin } from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { AXIS_TITLE_H, facetChartConfig, facetSizes, type FacetSizes } from '../src/presentation/heatmapChart';
import { facetColumns, layoutSweep } from '../src/presentation/heatmapLayout';
import type { Facet } from '../src/presentation/heatmapLayout';
import type { SweepResult } from '../src/protocol/result';
import { h } from './dom';
import type { Theme } from './theme';

Chart.register(MatrixController, MatrixElement, CategoryScale, LinearScale);

const MIN_CELL_W = 6;
const MIN_CELL_H = 10;
const MAX_CELL = 56;
/** Keep in step with .pl-facet-row's gap in media/panel.css. */
const GAP_X = 12;

export interface HeatmapInput {
  readonly sweep: SweepResult;
  readonly tokens: readonly string[];
  readonly range: number;
  readonly theme: Theme;
  readonly highlight: number | null;
  /** Width the facet grid may take, in CSS pixels; cells shrink to fit it, down to a legible minimum. */
  readonly width: number;
  /** Height of the viewport: cells flatten so that a sweep fits it when they can stay legible. */
  readonly viewportHeight: number;
}

export interface HoveredCell {
  readonly facet: Facet;
  readonly row: number;
  readonly col: number;
  readonly clientX: number;
  readonly clientY: number;
}

export interface HeatmapEvents {
  /** The token position under the pointer (a position column, or a dest row's label), null elsewhere. */
  hoverPosition(pos: number | null): void;
  hoverCell(cell: HoveredCell | null): void;
}

interface FacetView {
  readonly facet: Facet;
  readonly box: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  chart: Chart | undefined;
  hover: { row: number; col: number } | null;
}

type Metrics = FacetSizes;

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

let scratch: CanvasRenderingContext2D | null = null;
function textWidth(font: string, texts: readonly string[]): number {
  scratch ??= document.createElement('canvas').getContext('2d');
  if (!scratch) return 8 * Math.max(0, ...texts.map((t) => t.length));
  scratch.font = font;
  let m = 0;
  for (const t of texts) m = Math.max(m, scratch.measureText(t).width);
  return Math.ceil(m);
}

function metricsFor(facet: Facet, theme: Theme, gridCols: number, gridRows: number, input: HeatmapInput): Metrics {
  const cols = facet.colLabels.length;
  const rows = facet.rowLabels.length;
  // The y labels' width depends on the font, which depends on the cell height: size for the larger font.
  const rowW = textWidth(`11px ${theme.font}`, facet.rowLabels);
  const yAxisW = AXIS_TITLE_H + rowW + 8;
  const avail = input.width - yAxisW - (gridCols - 1) * GAP_X;
  const cellW = clamp(Math.floor(avail / (gridCols * cols)), MIN_CELL_W, MAX_CELL);
  // Room for the header, toolbar and x labels above and below the cells.
  const tallest = Math.max(320, input.viewportHeight - 220);
  const cellH = clamp(Math.min(cellW, Math.floor(tallest / (gridRows * rows))), MIN_CELL_H, MAX_CELL);
  return facetSizes(cellW, cellH, rowW, (px) => textWidth(`${px}px ${theme.font}`, facet.colLabels));
}


export class HeatmapView {
  /** The facet grid; the caller places it. */
  readonly element: HTMLElement;
  private views: FacetView[] = [];
  private range = 1;
  private highlight: number | null = null;
  private theme: Theme | undefined;
  /** While exporting, the highlight and hover outlines are left out of the picture. */
  private bare = false;

  constructor(private readonly events: HeatmapEvents) {
    this.element = h('div', { className: 'pl-facets' });
    this.element.addEventListener('mouseleave', () => {
      this.events.hoverPosition(null);
      this.events.hoverCell(null);
    });
    this.element.addEventListener('mousemove', (ev) => {
      if (!(ev.target instanceof HTMLCanvasElement)) {
        this.events.hoverPosition(null);
        this.events.hoverCell(null);
      }
    });
  }

  render(input: HeatmapInput): void {
    this.destroy();
    this.range = input.range;
    this.highlight = input.highlight;
    this.theme = input.theme;
    const facets = layoutSweep(input.sweep, { tokens: [...input.tokens] });
    const root = this.element;
    root.dataset.facetCount = String(facets.length);
    root.dataset.cellCount = '0';
    this.setHighlightAttr();
    if (facets.length === 0) return;

    const gridCols = Math.min(facets.length, facetColumns(input.sweep, facets.length));
    const gridRows = Math.ceil(facets.length / gridCols);
    const multi = facets.length > 1;
    // All facets of a sweep share their labels (components and dest×src heads index the same axes).
    const m = metricsFor(facets[0], input.theme, gridCols, gridRows, input);

    let row: HTMLElement | undefined;
    let cells = 0;
    for (let i = 0; i < facets.length; i++) {
      const facet = facets[i];
      if (i % gridCols === 0) {
        row = h('div', { className: 'pl-facet-row' });
        root.appendChild(row);
      }
      const showY = i % gridCols === 0;
      // The x labels go under a facet only when no facet sits below it.
      const showX = i + gridCols >= facets.length;
      const canvas = h('canvas', { attrs: { role: 'img', 'aria-label': facet.title ? `heatmap ${facet.title}` : 'heatmap' } });
      const box = h('div', { className: 'pl-facet' });
      const title = multi ? h('div', { className: 'pl-facet-title', text: facet.title }) : undefined;
      if (title) box.appendChild(title);
      box.appendChild(canvas);
      row?.appendChild(box);
      const view: FacetView = { facet, box, canvas, chart: undefined, hover: null };
      view.chart = this.makeChart(view, m, showX, showY);
      this.views.push(view);
      this.attachPointer(view);

      const a = view.chart.chartArea;
      // Over the cells, not over the y labels: the facet box aligns its children right, where the plot is.
      if (title) title.style.width = `${a.right - a.left}px`;
      const drawn = view.chart.getDatasetMeta(0).data.length;
      cells += drawn;
      Object.assign(box.dataset, {
        index: String(i),
        title: facet.title,
        rows: String(facet.rowLabels.length),
        cols: String(facet.colLabels.length),
        posAxis: facet.posAxis ?? '',
        rowsArePositions: facet.rowsArePositions ? 'true' : 'false',
        drawnCells: String(drawn),
        plotLeft: String(a.left),
        plotTop: String(a.top),
        plotWidth: String(a.right - a.left),
        plotHeight: String(a.bottom - a.top),
      });
    }
    root.dataset.cellCount = String(cells);
  }

  /** Top of the first facet's plot within the grid: where the colour bar starts, level with the cells. */
  plotTopOffset(): number {
    const v = this.views[0];
    if (!v?.chart) return 0;
    return v.canvas.offsetTop - this.element.offsetTop + v.chart.chartArea.top;
  }

  /** Height of one facet's plot area, which the colour bar matches. */
  plotHeight(): number {
    const a = this.views[0]?.chart?.chartArea;
    return a ? a.bottom - a.top : 0;
  }

  setHighlight(pos: number | null): void {
    this.highlight = pos;
    this.setHighlightAttr();
    for (const v of this.views) v.chart?.draw();
  }

  setRange(range: number): void {
    this.range = range;
    // 'none': no animation, and the scriptable colours are resolved again.
    for (const v of this.views) v.chart?.update('none');
  }

  /** Runs `paint` with the charts drawn without highlight or hover, then restores them. */
  withoutOverlays<T>(paint: () => T): T {
    this.bare = true;
    for (const v of this.views) v.chart?.draw();
    try {
      return paint();
    } finally {
      this.bare = false;
      for (const v of this.views) v.chart?.draw();
    }
  }

  destroy(): void {
    for (const v of this.views) v.chart?.destroy();
    this.views = [];
    while (this.element.firstChild) this.element.removeChild(this.element.firstChild);
  }

  private setHighlightAttr(): void {
    this.element.dataset.highlight = this.highlight === null ? '' : String(this.highlight);
  }

  private makeChart(view: FacetView, m: Metrics, showX: boolean, showY: boolean): Chart {
    const { facet, canvas } = view;
    const theme = this.theme as Theme;
    const plotW = facet.colLabels.length * m.cellW;
    const plotH = facet.rowLabels.length * m.cellH;
    const yW = showY ? m.yAxisW : 0;
    const xH = showX ? m.xAxisH : 0;
    canvas.width = Math.max(1, yW + plotW);
    canvas.height = Math.max(1, plotH + xH);
    const overlay: Plugin = { id: 'plOverlay', afterDatasetsDraw: (chart) => this.drawOverlay(view, chart) };
    const config = facetChartConfig(facet, m, theme, () => this.range, showX, showY);
    config.plugins = [overlay];
    return new Chart(canvas, config);
  }

  /** The highlighted token's column (and, on dest×src facets, its row), and the hovered cell. */
  private drawOverlay(view: FacetView, chart: Chart): void {
    const { facet } = view;
    const theme = this.theme as Theme;
    const a = chart.chartArea;
    const rows = facet.rowLabels.length;
    const cols = facet.colLabels.length;
    const cw = (a.right - a.left) / cols;
    const ch = (a.bottom - a.top) / rows;
    const ctx = chart.ctx;
    const drawn: string[] = [];
    // A 3 px black line with a 1 px white one inside, on whole pixels within the band: on pale cells the
    // black shows, on saturated ones the white, in either theme (theme colours vanish on pale cells in dark).
    const outline = (x: number, y: number, w: number, hh: number): void => {
      ctx.lineWidth = 3;
      ctx.strokeStyle = '#000000';
      ctx.strokeRect(Math.round(x) + 1.5, Math.round(y) + 1.5, Math.round(w) - 3, Math.round(hh) - 3);
      ctx.lineWidth = 1;
      ctx.strokeStyle = '#ffffff';
      ctx.strokeRect(Math.round(x) + 3.5, Math.round(y) + 3.5, Math.round(w) - 7, Math.round(hh) - 7);
    };
    ctx.save();
    const pos = this.bare ? null : this.highlight;
    if (pos !== null) {
      if (facet.posAxis === 'col' && pos < cols) {
        outline(a.left + pos * cw, a.top, cw, a.bottom - a.top);
        drawn.push('col');
      }
      if (facet.rowsArePositions && pos < rows) {
        outline(a.left, a.top + pos * ch, a.right - a.left, ch);
        drawn.push('row');
      }
    }
    if (view.hover && !this.bare) {
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = theme.text;
      ctx.strokeRect(a.left + view.hover.col * cw + 0.75, a.top + view.hover.row * ch + 0.75, cw - 1.5, ch - 1.5);
    }
    ctx.restore();
    view.box.dataset.highlightDrawn = drawn.join(' ');
  }

  private attachPointer(view: FacetView): void {
    const { canvas, facet } = view;
    const setHover = (cell: { row: number; col: number } | null): void => {
      const same = cell === view.hover || (cell && view.hover && cell.row === view.hover.row && cell.col === view.hover.col);
      if (same) return;
      view.hover = cell;
      view.chart?.draw();
    };
    canvas.addEventListener('mousemove', (ev) => {
      const chart = view.chart;
      if (!chart) return;
      const a = chart.chartArea;
      const rows = facet.rowLabels.length;
      const cols = facet.colLabels.length;
      const x = ev.offsetX;
      const y = ev.offsetY;
      const inX = x >= a.left && x < a.right;
      const inY = y >= a.top && y < a.bottom;
      const col = clamp(Math.floor(((x - a.left) / (a.right - a.left)) * cols), 0, cols - 1);
      const row = clamp(Math.floor(((y - a.top) / (a.bottom - a.top)) * rows), 0, rows - 1);
      let pos: number | null = null;
      if (inX && inY) {
        setHover({ row, col });
        this.events.hoverCell({ facet, row, col, clientX: ev.clientX, clientY: ev.clientY });
        if (facet.posAxis === 'col') pos = col;
        else if (facet.posAxis === 'row') pos = row;
      } else {
        setHover(null);
        this.events.hoverCell(null);
        // The tick labels name the tokens, so pointing at a label means that token as well.
        if (inX && y >= a.bottom && facet.posAxis === 'col') pos = col;
        else if (inY && x < a.left && (facet.rowsArePositions || facet.posAxis === 'row')) pos = row;
      }
      this.events.hoverPosition(pos);
    });
    canvas.addEventListener('mouseleave', () => {
      setHover(null);
      this.events.hoverCell(null);
    });
  }
}
