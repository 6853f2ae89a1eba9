/**
 * The colour bar, painted the same way on the panel's canvas and on the PNG export's: the scale's
 * colours from zmax (top) to zmin (bottom) as a value axis, a mark across the bar at each baseline, and
 * labels that name the baselines ("clean -4.19e-6", "corrupted -11.1") and give the ends' values.
 */
import { type ColorScale, scaleColor, tickOffset } from './colorScale';

/** What both canvases (the browser's and @napi-rs/canvas's) offer that the bar needs. */
export interface BarContext {
  fillStyle: unknown;
  strokeStyle: unknown;
  lineWidth: number;
  font: string;
  textAlign: unknown;
  textBaseline: unknown;
  fillRect(x: number, y: number, w: number, h: number): void;
  strokeRect(x: number, y: number, w: number, h: number): void;
  fillText(text: string, x: number, y: number): void;
  measureText(text: string): { width: number };
  createLinearGradient(x0: number, y0: number, x1: number, y1: number): { addColorStop(offset: number, color: string): void };
}

export interface BarStyle {
  readonly text: string;
  readonly border: string;
  /** Font family; labels are 11 px. */
  readonly font: string;
}

export const BAR_W = 14;
const LABEL_GAP = 6;
/** Labels are centred on their value, so the bar leaves half a line free above and below. */
export const BAR_MARGIN = 6;
const LINE_H = 12;

/** Width of the bar and its labels. */
export function colorBarWidth(ctx: Pick<BarContext, 'font' | 'measureText'>, s: ColorScale, style: BarStyle): number {
  ctx.font = `11px ${style.font}`;
  const w = Math.max(0, ...s.ticks.map((t) => ctx.measureText(t.label).width));
  return BAR_W + LABEL_GAP + Math.ceil(w) + 2;
}

/**
 * The labels that fit, highest priority first (baselines, then the centre, then the ends): a label
 * closer than a line to one already placed is left out, its value still marked on the bar.
 */
export function placedTicks(s: ColorScale, height: number): { label: string; y: number; kind: string }[] {
  const order = { clean: 0, corrupted: 1, center: 2, end: 3 } as const;
  const placed: { label: string; y: number; kind: string }[] = [];
  for (const t of [...s.ticks].sort((a, b) => order[a.kind] - order[b.kind])) {
    const y = tickOffset(s, t.value, height);
    if (placed.some((p) => Math.abs(p.y - y) < LINE_H)) continue;
    placed.push({ label: t.label, y, kind: t.kind });
  }
  return placed.sort((a, b) => a.y - b.y);
}

/** Paints the bar with its left edge at `left`, spanning `top` .. `top + height` (labels overhang by BAR_MARGIN). */
export function paintColorBar(ctx: BarContext, s: ColorScale, left: number, top: number, height: number, style: BarStyle): void {
  const grad = ctx.createLinearGradient(0, top, 0, top + height);
  const steps = 48;
  for (let k = 0; k <= steps; k++) {
    const v = s.zmax - (k / steps) * (s.zmax - s.zmin);
    const c = scaleColor(s, v) ?? [255, 255, 255];
    grad.addColorStop(k / steps, `rgb(${c[0]},${c[1]},${c[2]})`);
  }
  ctx.fillStyle = grad;
  ctx.fillRect(left, top, BAR_W, height);
  ctx.strokeStyle = style.border;
  ctx.lineWidth = 1;
  ctx.strokeRect(left + 0.5, top + 0.5, BAR_W - 1, height - 1);
  // A baseline's mark: dark over light, so it shows on the white centre and on the saturated ends alike.
  for (const t of s.ticks) {
    if (t.kind !== 'clean' && t.kind !== 'corrupted') continue;
    const y = Math.round(top + tickOffset(s, t.value, height));
    ctx.fillStyle = '#000000';
    ctx.fillRect(left, Math.min(y, top + height - 2), BAR_W, 1);
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(left, Math.min(y, top + height - 2) + 1, BAR_W, 1);
  }
  ctx.fillStyle = style.text;
  ctx.font = `11px ${style.font}`;
  ctx.textAlign = 'left';
  ctx.textBaseline = 'middle';
  for (const p of placedTicks(s, height)) ctx.fillText(p.label, left + BAR_W + LABEL_GAP, top + p.y);
}
