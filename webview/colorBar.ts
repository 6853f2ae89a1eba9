/** The colour bar: +range at the top, as plotly and the PNG export draw it, then 0, then −range. */
import { colorBarGradient } from '../src/presentation/heatmapChart';
import { shortValue } from '../src/presentation/resultText';
import type { Theme } from './theme';

const BAR_W = 14;
const GAP = 16;
// No tick marks: a mark just before the label reads as a minus sign.
const LABEL_GAP = 6;

export function drawColorBar(canvas: HTMLCanvasElement, range: number, theme: Theme, height: number): void {
  const font = `11px ${theme.font}`;
  const labels = [shortValue(range), '0', shortValue(-range)];
  const probe = canvas.getContext('2d');
  if (!probe) return;
  probe.font = font;
  const labelW = Math.ceil(Math.max(...labels.map((l) => probe.measureText(l).width)));
  const cssW = GAP + BAR_W + LABEL_GAP + labelW + 2;
  const cssH = Math.max(60, Math.round(height));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.dataset.range = String(range);
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  // Tick labels sit inside the bar's height, so the bar spans the canvas less half a line at each end.
  const top = 6;
  const barH = cssH - 12;
  ctx.fillStyle = colorBarGradient(ctx, top, barH, range);
  ctx.fillRect(GAP, top, BAR_W, barH);
  ctx.strokeStyle = theme.border;
  ctx.lineWidth = 1;
  ctx.strokeRect(GAP + 0.5, top + 0.5, BAR_W - 1, barH - 1);
  ctx.fillStyle = theme.text;
  ctx.font = font;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  const ys = [top, top + barH / 2, top + barH];
  labels.forEach((l, i) => ctx.fillText(l, GAP + BAR_W + LABEL_GAP, ys[i]));
}
