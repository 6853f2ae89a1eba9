/**
 * The chart.js matrix-chart configuration of one heatmap facet, shared by the webview and the PNG
 * export so both draw the same picture. Pure data: each caller creates the chart on its own canvas.
 */
import type { Chart, ChartConfiguration, Plugin, Scale } from 'chart.js';
import type { Rgb } from './colorScale';
import { type Facet, labelStep } from './heatmapLayout';

/** Sizes that depend only on the labels and the cell size. */
export interface FacetSizes {
  readonly cellW: number;
  readonly cellH: number;
  readonly xFont: number;
  readonly yFont: number;
  readonly yAxisW: number;
  readonly xAxisH: number;
  readonly rotate: boolean;
  /** Every xStep-th column label and yStep-th row label is drawn (1: all of them). */
  readonly xStep: number;
  readonly yStep: number;
}

export interface ChartColors {
  readonly text: string;
  readonly muted: string;
  readonly font: string;
}

/** Height of an axis title line with its padding. */
export const AXIS_TITLE_H = 11 + 8;

// Below 12 px cells, 11 px labels overlap; 9 px stays legible and labelStep thins out the rest.
export const fontFor = (cell: number): number => (cell >= 12 ? 11 : 9);

export const rgb = (c: readonly [number, number, number]): string => `rgb(${c[0]},${c[1]},${c[2]})`;
/** A cell without a colour (an index the model lacks) shows the background: blank. */
export const cellFill = (c: Rgb | null): string => (c ? rgb(c) : 'rgba(0,0,0,0)');

/** Axis sizes for cells of `cellW` x `cellH`, given the widest row label and a way to measure column labels. */
export function facetSizes(cellW: number, cellH: number, rowLabelW: number, colLabelW: (fontPx: number) => number): FacetSizes {
  const xFont = fontFor(cellW);
  const colW = colLabelW(xFont);
  const rotate = colW + 6 > cellW;
  const yFont = fontFor(cellH);
  return {
    cellW,
    cellH,
    xFont,
    yFont,
    yAxisW: AXIS_TITLE_H + rowLabelW + 8,
    xAxisH: AXIS_TITLE_H + (rotate ? colW : xFont + 2) + 8,
    rotate,
    // A label takes its font size plus a pixel across the axis (rotated x labels: their height).
    xStep: rotate ? labelStep(cellW, xFont + 1) : 1,
    yStep: labelStep(cellH, yFont + 1),
  };
}

/** x, y: label indices, already in chart.js's parsed form (see `parsing: false`). */
export type Cell = { x: number; y: number; v: number | null };

export function facetData(facet: Facet): Cell[] {
  const data: Cell[] = [];
  for (let r = 0; r < facet.rowLabels.length; r++) {
    for (let c = 0; c < facet.colLabels.length; c++) data.push({ x: c, y: r, v: facet.values[r]![c]! });
  }
  return data;
}

/**
 * A hairline across each cell the model does not have (null): the cell stays blank, not a colour, and
 * the line tells it apart from a white "no effect" cell. Reads the chart's data, so a chart refilled
 * with another facet's cells (the PNG export reuses charts) marks that facet's.
 */
function blankCells(color: string): Plugin {
  return {
    id: 'plBlankCells',
    afterDatasetsDraw: (chart: Chart) => {
      const data = chart.data.datasets[0]?.data as Cell[] | undefined;
      const x = chart.scales.x;
      const y = chart.scales.y;
      if (!data || !x || !y) return;
      const a = chart.chartArea;
      const cols = (x as unknown as { getLabels(): string[] }).getLabels().length;
      const rows = (y as unknown as { getLabels(): string[] }).getLabels().length;
      const cw = (a.right - a.left) / Math.max(1, cols);
      const ch = (a.bottom - a.top) / Math.max(1, rows);
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = color;
      ctx.globalAlpha = 0.6;
      ctx.lineWidth = 1;
      ctx.beginPath();
      for (const d of data) {
        if (d.v !== null) continue;
        const x0 = a.left + d.x * cw;
        const y0 = a.top + d.y * ch;
        ctx.moveTo(x0 + 2, y0 + ch - 2);
        ctx.lineTo(x0 + cw - 2, y0 + 2);
      }
      ctx.stroke();
      ctx.restore();
    },
  };
}

/**
 * The matrix chart of a facet. `showX`/`showY` say whether it carries the shared axis labels; the axis
 * boxes are set exactly (no overflow padding), so the plot area is cells x cell size, facets line up
 * in a grid and a cell's pixels follow from its index. `color` is called when cells are drawn, so a
 * new colour scale needs only an update.
 */
export function facetChartConfig(facet: Facet, m: FacetSizes, colors: ChartColors, color: (v: number | null) => Rgb | null, showX: boolean, showY: boolean): ChartConfiguration {
  const yW = showY ? m.yAxisW : 0;
  const xH = showX ? m.xAxisH : 0;
  const titleFont = { size: 11, family: colors.font, weight: 'bold' as const };
  const fixX = (s: Scale): void => {
    s.height = xH;
    s.paddingLeft = s.paddingRight = 0;
  };
  const fixY = (s: Scale): void => {
    s.width = yW;
    s.paddingTop = s.paddingBottom = 0;
  };
  const config = {
    type: 'matrix',
    plugins: [blankCells(colors.muted)],
    data: {
      datasets: [
        {
          data: facetData(facet),
          // Parsing category values looks each label up in the label list, quadratic in the cell count.
          parsing: false,
          borderWidth: 0,
          backgroundColor: (c: { raw?: Cell }) => cellFill(color(c.raw ? c.raw.v : NaN)),
          // Half a pixel of overlap hides the hairline seams antialiasing leaves between cells.
          width: () => m.cellW + 0.5,
          height: () => m.cellH + 0.5,
        },
      ],
    },
    options: {
      animation: false,
      responsive: false,
      events: [],
      layout: { padding: 0 },
      plugins: { legend: { display: false }, tooltip: { enabled: false }, title: { display: false } },
      scales: {
        x: {
          type: 'category',
          labels: facet.colLabels,
          offset: true,
          display: showX,
          position: 'bottom',
          grid: { display: false, drawTicks: false },
          border: { display: false },
          ticks: {
            font: { size: m.xFont, family: colors.font },
            color: colors.text,
            padding: 4,
            // The labels to draw are chosen here (an even subset), never dropped by chart.js unannounced.
            autoSkip: false,
            callback: (_v: unknown, i: number) => (i % m.xStep === 0 ? facet.colLabels[i] : ''),
            minRotation: m.rotate ? 90 : 0,
            maxRotation: m.rotate ? 90 : 0,
          },
          title: { display: true, text: facet.colAxis, font: titleFont, color: colors.muted, padding: { top: 2, bottom: 0 } },
          afterFit: fixX,
        },
        y: {
          type: 'category',
          labels: facet.rowLabels,
          offset: true,
          // Row 0 (layer 0) on top, as imshow draws it; chartjs-chart-matrix defaults to reverse: true.
          reverse: false,
          display: showY,
          grid: { display: false, drawTicks: false },
          border: { display: false },
          ticks: {
            font: { size: m.yFont, family: colors.font },
            color: colors.text,
            padding: 4,
            autoSkip: false,
            callback: (_v: unknown, i: number) => (i % m.yStep === 0 ? facet.rowLabels[i] : ''),
          },
          // Rotated along the plot's height: a title taller than two rows of cells would be cut at the canvas's edge
          // (the row labels, L0 or L0H1, say the same).
          title: {
            display: facet.rowAxis.length * 7 <= facet.rowLabels.length * m.cellH,
            text: facet.rowAxis,
            font: titleFont,
            color: colors.muted,
            padding: { top: 0, bottom: 2 },
          },
          afterFit: fixY,
        },
      },
    },
  };
  return config as unknown as ChartConfiguration;
}
