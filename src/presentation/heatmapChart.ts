/**
 * The chart.js matrix-chart configuration of one heatmap facet, shared by the webview and the PNG
 * export so both draw the same picture. Pure data: each caller creates the chart on its own canvas.
 */
import type { ChartConfiguration, Scale } from 'chart.js';
import { divergingColor, type Facet } from './heatmapLayout';

/** Sizes that depend only on the labels and the cell size. */
export interface FacetSizes {
  readonly cellW: number;
  readonly cellH: number;
  readonly xFont: number;
  readonly yFont: number;
  readonly yAxisW: number;
  readonly xAxisH: number;
  readonly rotate: boolean;
}

export interface ChartColors {
  readonly text: string;
  readonly muted: string;
  readonly font: string;
}

/** Height of an axis title line with its padding. */
export const AXIS_TITLE_H = 11 + 8;

// Below 12 px cells, 11 px labels overlap; 9 px stays legible and chart.js's autoSkip thins out the rest.
export const fontFor = (cell: number): number => (cell >= 12 ? 11 : 9);

export const rgb = (c: readonly [number, number, number]): string => `rgb(${c[0]},${c[1]},${c[2]})`;

/** Axis sizes for cells of `cellW` x `cellH`, given the widest row label and a way to measure column labels. */
export function facetSizes(cellW: number, cellH: number, rowLabelW: number, colLabelW: (fontPx: number) => number): FacetSizes {
  const xFont = fontFor(cellW);
  const colW = colLabelW(xFont);
  const rotate = colW + 6 > cellW;
  return {
    cellW,
    cellH,
    xFont,
    yFont: fontFor(cellH),
    yAxisW: AXIS_TITLE_H + rowLabelW + 8,
    xAxisH: AXIS_TITLE_H + (rotate ? colW : xFont + 2) + 8,
    rotate,
  };
}

/** x, y: label indices, already in chart.js's parsed form (see `parsing: false`). */
export type Cell = { x: number; y: number; v: number };

export function facetData(facet: Facet): Cell[] {
  const data: Cell[] = [];
  for (let r = 0; r < facet.rowLabels.length; r++) {
    for (let c = 0; c < facet.colLabels.length; c++) data.push({ x: c, y: r, v: facet.values[r]![c]! });
  }
  return data;
}

/**
 * The matrix chart of a facet. `showX`/`showY` say whether it carries the shared axis labels; the axis
 * boxes are set exactly (no overflow padding), so the plot area is cells x cell size, facets line up
 * in a grid and a cell's pixels follow from its index. `range` is read when cells are drawn.
 */
export function facetChartConfig(
  facet: Facet,
  m: FacetSizes,
  colors: ChartColors,
  range: () => number,
  showX: boolean,
  showY: boolean,
): ChartConfiguration {
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
    data: {
      datasets: [
        {
          data: facetData(facet),
          // Parsing category values looks each label up in the label list, quadratic in the cell count.
          parsing: false,
          borderWidth: 0,
          backgroundColor: (c: { raw?: Cell }) => rgb(divergingColor(c.raw?.v ?? NaN, range())),
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
            autoSkip: true,
            autoSkipPadding: 2,
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
          ticks: { font: { size: m.yFont, family: colors.font }, color: colors.text, padding: 4, autoSkip: true, autoSkipPadding: 2 },
          title: { display: true, text: facet.rowAxis, font: titleFont, color: colors.muted, padding: { top: 0, bottom: 2 } },
          afterFit: fixY,
        },
      },
    },
  };
  return config as unknown as ChartConfiguration;
}

/** The colour bar's fill: +range at the top (as plotly draws it), −range at the bottom. */
export function colorBarGradient<G extends { addColorStop(offset: number, color: string): void }>(
  ctx: { createLinearGradient(x0: number, y0: number, x1: number, y1: number): G },
  top: number,
  height: number,
  range: number,
): G {
  const grad = ctx.createLinearGradient(0, top, 0, top + height);
  for (let k = 0; k <= 20; k++) grad.addColorStop(k / 20, rgb(divergingColor(range * (1 - (2 * k) / 20), range)));
  return grad;
}
