/** The panel's colour bar: the shared painter (src/presentation/colorBar.ts) on a canvas of its own. */
import { BAR_MARGIN, colorBarWidth, paintColorBar, placedTicks } from '../src/presentation/colorBar';
import type { ColorScale } from '../src/presentation/colorScale';
import type { Theme } from './theme';

const GAP = 16;

/** The canvas's CSS width for a scale: what the heatmap must leave free beside it. */
export function colorBarCssWidth(scale: ColorScale, theme: Theme): number {
  const probe = document.createElement('canvas').getContext('2d');
  return GAP + (probe ? colorBarWidth(probe, scale, { text: theme.text, border: theme.border, font: theme.font }) : 120);
}

export function drawColorBar(canvas: HTMLCanvasElement, scale: ColorScale, theme: Theme, height: number): void {
  const style = { text: theme.text, border: theme.border, font: theme.font };
  const cssW = colorBarCssWidth(scale, theme);
  const cssH = Math.max(80, Math.round(height));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  const barH = cssH - 2 * BAR_MARGIN;
  Object.assign(canvas.dataset, {
    zmin: String(scale.zmin),
    zmax: String(scale.zmax),
    center: String(scale.center),
    redEnd: scale.redEnd,
    labels: placedTicks(scale, barH)
      .map((t) => t.label)
      .join('|'),
  });
  canvas.setAttribute('aria-label', `colour scale from ${scale.zmin} to ${scale.zmax}; ${scale.legend}`);
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  paintColorBar(ctx, scale, GAP, BAR_MARGIN, barH, style);
}
