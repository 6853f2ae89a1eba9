/**
 * The heatmaps of one sweep: one chart.js matrix chart per facet of `layoutSweep`, in a grid that uses
 * the panel's width. Cells grow to fill it up to MAX_CELL and never shrink below MIN_CELL: a sweep too
 * large for the panel scrolls instead, and facets wrap onto rows when they do not fit side by side.
 * Chart.js's own event handling is off: the pointer is mapped to a cell here, from each chart's plot
 * area, so hovering and the tooltip follow exactly the cells that were drawn.
 *
 * Each facet element carries data attributes (rows, cols, plot box, cells drawn, label steps, highlight
 * and hovered cell drawn): they describe what is on screen for tests and for anyone inspecting the panel.
 */
import { CategoryScale, Chart, LinearScale } from 'chart.js';
import type { Plugin } from 'chart.js';
import { MatrixController, MatrixElement } from 'chartjs-chart-matrix';
import { AXIS_TITLE_H, facetChartConfig, facetSizes, type FacetSizes } from '../src/presentation/heatmapChart';
import { type ColorScale, scaleColor } from '../src/presentation/colorScale';
import { facetColumns, layoutSweep, type Placement, placeFacets } from '../src/presentation/heatmapLayout';
import type { Facet } from '../src/presentation/heatmapLayout';
import type { HeadGroups } from '../src/presentation/heads';
import { tokenText } from '../src/presentation/resultText';
import type { SweepResult } from '../src/protocol/result';
import { h } from './dom';
import type { Theme } from './theme';

Chart.register(MatrixController, MatrixElement, CategoryScale, LinearScale);

/** 11 px labels need 12 px cells; below that a sweep scrolls rather than shrinking. */
export const MIN_CELL = 12;
export const MAX_CELL = 48;
/** Keep in step with .pl-facet-row's gap in media/panel.css. */
const GAP_X = 12;
/** The header, toolbar, legend and x labels around the cells, when fitting a sweep's height to the window. */
const CHROME_H = 260;

export interface HeatmapInput {
  readonly sweep: SweepResult;
  readonly tokens: readonly string[];
  readonly heads: HeadGroups | undefined;
  readonly scale: ColorScale;
  readonly theme: Theme;
  readonly highlight: number | null;
  /** Width the facet grid may take, in CSS pixels. */
  readonly width: number;
  /** Height of the viewport: cells flatten (down to MIN_CELL) so that a sweep fits it when they can. */
  readonly viewportHeight: number;
}

/** The facets of a sweep and how they are laid out at a width. */
export interface GridPlan {
  readonly facets: Facet[];
  readonly cols: number;
  readonly places: Placement[];
  readonly sizes: FacetSizes;
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
  /** An axis label under the pointer, in full (labels may be shortened, or drawn only every few cells). */
  hoverLabel(label: { text: string; clientX: number; clientY: number } | null): void;
  /** A cell was clicked (to select it for "Patch together"). */
  clickCell(cell: { facet: Facet; index: number; row: number; col: number }): void;
}

interface FacetView {
  readonly facet: Facet;
  readonly box: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  chart: Chart | undefined;
  hover: { row: number; col: number } | null;
}

const clamp = (v: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, v));

let scratch: CanvasRenderingContext2D | null = null;
export function textWidth(font: string, texts: readonly string[]): number {
  scratch ??= document.createElement('canvas').getContext('2d');
  if (!scratch) return 8 * Math.max(0, ...texts.map((t) => t.length));
  scratch.font = font;
  let m = 0;
  for (const t of texts) m = Math.max(m, scratch.measureText(t).width);
  return Math.ceil(m);
}

/**
 * The grid at `width`: as many facets side by side as the sweep prefers while cells stay at least
 * MIN_CELL wide, fewer (wrapping onto rows) otherwise; cells as wide as the width allows up to MAX_CELL,
 * as tall as fits the viewport, never below MIN_CELL (then the panel scrolls).
 */
export function planGrid(sweep: SweepResult, tokens: readonly string[], heads: HeadGroups | undefined, theme: Theme, width: number, viewportHeight: number): GridPlan {
  const facets = layoutSweep(sweep, { tokens: [...tokens], heads });
  const n = Math.max(1, facets.length);
  const ref = facets[0];
  const cols0 = ref?.colLabels.length ?? 1;
  const rows0 = ref?.rowLabels.length ?? 1;
  // The y labels' width depends on the font, which depends on the cell height: size for the larger font.
  const rowW = textWidth(
    `11px ${theme.font}`,
    facets.flatMap((f) => f.rowLabels),
  );
  const yAxisW = AXIS_TITLE_H + rowW + 8;
  const widthAt = (cols: number, places: Placement[]): number => {
    const labelled = Math.max(1, ...Array.from({ length: Math.ceil(n / cols) }, (_, r) => places.filter((p) => p.row === r && p.showY).length));
    return Math.floor((width - labelled * yAxisW - (cols - 1) * GAP_X) / (cols * cols0));
  };
  let cols = Math.min(n, facetColumns(sweep, n));
  let places = placeFacets(facets, cols);
  while (cols > 1 && widthAt(cols, places) < MIN_CELL) {
    cols--;
    places = placeFacets(facets, cols);
  }
  const cellW = clamp(widthAt(cols, places), MIN_CELL, MAX_CELL);
  const gridRows = Math.ceil(n / cols);
  const tallest = Math.max(320, viewportHeight - CHROME_H);
  const cellH = clamp(Math.min(cellW, Math.floor(tallest / (gridRows * rows0))), MIN_CELL, MAX_CELL);
  const colTexts = facets.flatMap((f) => f.colLabels);
  return { facets, cols, places, sizes: facetSizes(cellW, cellH, rowW, (px) => textWidth(`${px}px ${theme.font}`, colTexts)) };
}

export class HeatmapView {
  /** The facet grid; the caller places it. */
  readonly element: HTMLElement;
  private views: FacetView[] = [];
  private scale: ColorScale | undefined;
  /** Flat indices of the shown sweep's cells that exact patching verified (attribution runs). */
  private verified: ReadonlySet<number> = new Set();
  private strides: number[] = [];
  private highlight: number | null = null;
  private theme: Theme | undefined;
  private tokens: readonly string[] = [];
  /** While exporting, the highlight and hover outlines are left out of the picture. */
  private bare = false;
  /** Selected cells, as `facet,row,col`. */
  private selected = new Set<string>();

  constructor(private readonly events: HeatmapEvents) {
    this.element = h('div', { className: 'pl-facets' });
    this.element.addEventListener('mouseleave', () => this.pointerGone());
    this.element.addEventListener('mousemove', (ev) => {
      if (!(ev.target instanceof HTMLCanvasElement)) this.pointerGone();
    });
  }

  render(input: HeatmapInput, plan: GridPlan): void {
    this.destroy();
    this.scale = input.scale;
    this.verified = new Set(input.sweep.verification?.cells.map((c) => c.index) ?? []);
    this.strides = input.sweep.shape.map((_, k) => input.sweep.shape.slice(k + 1).reduce((a, b) => a * b, 1));
    this.highlight = input.highlight;
    this.theme = input.theme;
    this.tokens = input.tokens;
    const { facets, cols, places, sizes: m } = plan;
    const root = this.element;
    root.dataset.facetCount = String(facets.length);
    root.dataset.cellCount = '0';
    root.dataset.gridCols = String(cols);
    this.setHighlightAttr();
    if (facets.length === 0) return;

    const multi = facets.length > 1;
    let row: HTMLElement | undefined;
    let cells = 0;
    for (let i = 0; i < facets.length; i++) {
      const facet = facets[i]!;
      const { showX, showY } = places[i]!;
      if (i % cols === 0) {
        row = h('div', { className: 'pl-facet-row' });
        root.appendChild(row);
      }
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
        showX: String(showX),
        showY: String(showY),
        xStep: String(m.xStep),
        yStep: String(m.yStep),
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

  /** Marks the selected cells (`facet,row,col`). */
  setSelected(keys: ReadonlySet<string>): void {
    this.selected = new Set(keys);
    for (const v of this.views) v.chart?.draw();
  }

  setScale(scale: ColorScale): void {
    this.scale = scale;
    // 'none': no animation, and the scriptable colours are resolved again.
    for (const v of this.views) v.chart?.update('none');
  }

  /** Outlines one cell as hovering it does (a strongest-effects entry points at it); null clears. */
  showCell(cell: { facet: number; row: number; col: number } | null, reveal = false): void {
    this.views.forEach((v, i) => {
      const want = cell && cell.facet === i ? { row: cell.row, col: cell.col } : null;
      if (want?.row !== v.hover?.row || want?.col !== v.hover?.col) {
        v.hover = want;
        v.chart?.draw();
      }
    });
    const v = cell ? this.views[cell.facet] : undefined;
    if (reveal && v?.chart && cell) {
      const a = v.chart.chartArea;
      const cw = (a.right - a.left) / v.facet.colLabels.length;
      const ch = (a.bottom - a.top) / v.facet.rowLabels.length;
      const r = v.canvas.getBoundingClientRect();
      const x = r.left + a.left + (cell.col + 0.5) * cw;
      const y = r.top + a.top + (cell.row + 0.5) * ch;
      // The page scrolls vertically, the plot horizontally: bring the cell into both.
      const scroller = this.element.closest('.pl-plot');
      if (scroller) {
        const s = scroller.getBoundingClientRect();
        if (x < s.left + 40 || x > s.right - 40) scroller.scrollLeft += x - (s.left + s.right) / 2;
      }
      if (y < 40 || y > window.innerHeight - 40) window.scrollBy({ top: y - window.innerHeight / 2 });
    }
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

  private pointerGone(): void {
    this.events.hoverPosition(null);
    this.events.hoverCell(null);
    this.events.hoverLabel(null);
  }

  private setHighlightAttr(): void {
    this.element.dataset.highlight = this.highlight === null ? '' : String(this.highlight);
  }

  private makeChart(view: FacetView, m: FacetSizes, showX: boolean, showY: boolean): Chart {
    const { facet, canvas } = view;
    const theme = this.theme as Theme;
    const plotW = facet.colLabels.length * m.cellW;
    const plotH = facet.rowLabels.length * m.cellH;
    const yW = showY ? m.yAxisW : 0;
    const xH = showX ? m.xAxisH : 0;
    canvas.width = Math.max(1, yW + plotW);
    canvas.height = Math.max(1, plotH + xH);
    const overlay: Plugin = { id: 'plOverlay', afterDatasetsDraw: (chart) => this.drawOverlay(view, chart) };
    const config = facetChartConfig(facet, m, theme, (v) => (this.scale ? scaleColor(this.scale, v) : null), showX, showY);
    config.plugins = [...(config.plugins ?? []), overlay];
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
    // Cells an attribution run checked by exact patching: a dot in the cell's corner (part of the picture, so exports keep it).
    const verified = this.verified;
    let marked = 0;
    if (verified.size > 0) {
      const r = Math.min(4, Math.max(1.5, Math.min(cw, ch) / 6));
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < cols; j++) {
          if (!verified.has(facet.cells[i]![j]!.index.reduce((f, x, k) => f + x * this.strides[k]!, 0))) continue;
          ctx.beginPath();
          ctx.arc(a.left + (j + 1) * cw - r - 1, a.top + i * ch + r + 1, r, 0, 2 * Math.PI);
          ctx.fillStyle = '#000000';
          ctx.fill();
          ctx.lineWidth = 1;
          ctx.strokeStyle = '#ffffff';
          ctx.stroke();
          marked++;
        }
      }
    }
    view.box.dataset.verifiedDrawn = String(marked);
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
    // Selected cells: a dashed frame in the text colour, inside the cell, so the colour still shows.
    const index = this.views.indexOf(view);
    let selected = 0;
    if (!this.bare) {
      ctx.setLineDash([3, 2]);
      ctx.lineWidth = 2;
      ctx.strokeStyle = theme.text;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          if (!this.selected.has(`${index},${r},${c}`)) continue;
          ctx.strokeRect(a.left + c * cw + 2, a.top + r * ch + 2, cw - 4, ch - 4);
          selected++;
        }
      }
      ctx.setLineDash([]);
    }
    view.box.dataset.selectedCells = String(selected);
    const hovered = view.hover && !this.bare ? view.hover : null;
    if (hovered) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = theme.text;
      ctx.strokeRect(a.left + hovered.col * cw + 1, a.top + hovered.row * ch + 1, cw - 2, ch - 2);
    }
    ctx.restore();
    view.box.dataset.highlightDrawn = drawn.join(' ');
    view.box.dataset.hoverCell = hovered ? `${hovered.row},${hovered.col}` : '';
  }

  /** A label in full: a position with its whole token, a blank KV label as what it is. */
  private labelText(facet: Facet, axis: 'row' | 'col', i: number): string {
    const name = axis === 'col' ? facet.colAxis : facet.rowAxis;
    const isPos = axis === 'col' ? facet.posAxis === 'col' : facet.rowsArePositions || facet.posAxis === 'row';
    const token = this.tokens[i];
    if (isPos) return token === undefined ? `${name} ${i}` : `${name} ${i} (${tokenText(token)})`;
    const label = (axis === 'col' ? facet.colLabels : facet.rowLabels)[i];
    return label ? `${name} ${label}` : `${name} ${i}: no such head`;
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
        this.events.hoverLabel(null);
        this.events.hoverCell({ facet, row, col, clientX: ev.clientX, clientY: ev.clientY });
        if (facet.posAxis === 'col') pos = col;
        else if (facet.posAxis === 'row') pos = row;
      } else {
        setHover(null);
        this.events.hoverCell(null);
        // The tick labels name the tokens, so pointing at a label means that token as well.
        const onX = inX && y >= a.bottom;
        const onY = inY && x < a.left;
        if (onX && facet.posAxis === 'col') pos = col;
        else if (onY && (facet.rowsArePositions || facet.posAxis === 'row')) pos = row;
        this.events.hoverLabel(onX || onY ? { text: this.labelText(facet, onX ? 'col' : 'row', onX ? col : row), clientX: ev.clientX, clientY: ev.clientY } : null);
      }
      this.events.hoverPosition(pos);
    });
    canvas.addEventListener('click', (ev) => {
      const a = view.chart?.chartArea;
      if (!a || ev.offsetX < a.left || ev.offsetX >= a.right || ev.offsetY < a.top || ev.offsetY >= a.bottom) return;
      const col = clamp(Math.floor(((ev.offsetX - a.left) / (a.right - a.left)) * facet.colLabels.length), 0, facet.colLabels.length - 1);
      const row = clamp(Math.floor(((ev.offsetY - a.top) / (a.bottom - a.top)) * facet.rowLabels.length), 0, facet.rowLabels.length - 1);
      this.events.clickCell({ facet, index: this.views.indexOf(view), row, col });
    });
    canvas.addEventListener('mouseleave', () => {
      setHover(null);
      this.events.hoverCell(null);
      this.events.hoverLabel(null);
    });
  }
}
