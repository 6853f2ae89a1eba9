/**
 * PNG of the shown sweep, composed from what is on screen: the chart canvases, the facet titles and
 * the colour bar at their laid-out places, under a title and the run's summary, on the theme's
 * background (a transparent PNG would lose the axis labels on the other theme's background).
 */
import type { Theme } from './theme';

const PAD = 14;
const TITLE_FONT = 16;
const SUBTITLE_FONT = 12;
/** Chromium refuses canvases much beyond this per side; very large grids are exported at reduced scale. */
const MAX_SIDE = 8000;

export interface PngContent {
  readonly title: string;
  readonly subtitle: string;
  /** Lines under the subtitle: how to read the colours, and anything clipped. */
  readonly lines: readonly string[];
  readonly theme: Theme;
  /** The element holding the facets and the colour bar; everything inside it is drawn at its offset. */
  readonly content: HTMLElement;
}

export function composePng({ title, subtitle, lines, theme, content }: PngContent): string {
  const origin = content.getBoundingClientRect();
  const measure = document.createElement('canvas').getContext('2d');
  if (!measure) throw new Error('no 2D canvas');
  measure.font = `bold ${TITLE_FONT}px ${theme.font}`;
  const titleW = measure.measureText(title).width;
  measure.font = `${SUBTITLE_FONT}px ${theme.font}`;
  const subtitleW = Math.max(...[subtitle, ...lines].map((t) => measure.measureText(t).width));
  const headerH = TITLE_FONT + 8 + SUBTITLE_FONT + 14 + lines.length * (SUBTITLE_FONT + 6);
  const cssW = Math.ceil(PAD * 2 + Math.max(origin.width, titleW, subtitleW));
  const cssH = Math.ceil(PAD * 2 + headerH + origin.height);
  const scale = Math.min(Math.max(1, window.devicePixelRatio || 1), MAX_SIDE / cssW, MAX_SIDE / cssH);

  const out = document.createElement('canvas');
  out.width = Math.max(1, Math.round(cssW * scale));
  out.height = Math.max(1, Math.round(cssH * scale));
  const ctx = out.getContext('2d');
  if (!ctx) throw new Error('no 2D canvas');
  ctx.scale(scale, scale);
  ctx.fillStyle = theme.background;
  ctx.fillRect(0, 0, cssW, cssH);
  ctx.textAlign = 'left';
  ctx.textBaseline = 'top';
  ctx.fillStyle = theme.text;
  ctx.font = `bold ${TITLE_FONT}px ${theme.font}`;
  ctx.fillText(title, PAD, PAD);
  ctx.fillStyle = theme.muted;
  ctx.font = `${SUBTITLE_FONT}px ${theme.font}`;
  ctx.fillText(subtitle, PAD, PAD + TITLE_FONT + 8);
  lines.forEach((line, i) => ctx.fillText(line, PAD, PAD + TITLE_FONT + 8 + (i + 1) * (SUBTITLE_FONT + 6)));

  const ox = PAD - origin.left;
  const oy = PAD + headerH - origin.top;
  for (const c of Array.from(content.querySelectorAll('canvas'))) {
    const r = c.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) ctx.drawImage(c, ox + r.left, oy + r.top, r.width, r.height);
  }
  ctx.fillStyle = theme.text;
  ctx.font = `bold 12px ${theme.font}`;
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  for (const t of Array.from(content.querySelectorAll<HTMLElement>('.pl-facet-title'))) {
    const r = t.getBoundingClientRect();
    const text = t.textContent ?? '';
    // A title wider than its facet is cut at the facet's edge, as the panel does, not run into the next.
    ctx.save();
    ctx.beginPath();
    ctx.rect(ox + r.left, oy + r.top, r.width, r.height);
    ctx.clip();
    ctx.fillText(text, ox + r.left + r.width / 2, oy + r.top + r.height / 2);
    ctx.restore();
  }
  return out.toDataURL('image/png');
}
