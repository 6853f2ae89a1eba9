/**
 * The results panel: one run's sweeps as heatmaps, linked to the source text through the host.
 * Entry of the webview bundle (dist/webview/main.js; esbuild emits the stylesheet imported here as
 * dist/webview/main.css, so the panel needs nothing outside the built webview folder).
 */
import '../media/panel.css';
import { symmetricRange } from '../src/presentation/heatmapLayout';
import type { SweepName } from '../src/protocol/spec';
import { drawColorBar } from './colorBar';
import { sweepCsv } from './csv';
import { clear, h } from './dom';
import { describeCell, exactValue, notices, shortValue, summaryParts } from '../src/presentation/resultText';
import { HeatmapView } from './heatmapView';
import type { HoveredCell } from './heatmapView';
import { HoverSender } from './hover';
import { parseHostMessage } from './messages';
import type { ShownResult } from './messages';
import { composePng } from './pngExport';
import { readTheme, watchTheme } from './theme';
import { vscodeHost } from './vscodeApi';

const host = vscodeHost();

let shown: ShownResult | undefined;
let sweep: SweepName | undefined;
let highlight: number | null = null;

// ---- the page ----------------------------------------------------------------------------------
const label = (text: string, ...controls: HTMLElement[]): HTMLElement => h('label', { className: 'pl-control' }, h('span', { text }), ...controls);

const titleEl = h('h1', { className: 'pl-title', text: 'PatchLens' });
const metaEl = h('p', { className: 'pl-meta' });
const noticesEl = h('div', { className: 'pl-notices', attrs: { role: 'status' } });
const sweepSelect = h('select', { attrs: { id: 'pl-sweep' } });
const rangeMode = h(
  'select',
  { attrs: { id: 'pl-range-mode', 'aria-label': 'Colour range mode' } },
  h('option', { text: 'auto', attrs: { value: 'auto' } }),
  h('option', { text: 'fixed', attrs: { value: 'fixed' } }),
);
const rangeInput = h('input', { attrs: { id: 'pl-range-value', type: 'number', min: '0', step: 'any', 'aria-label': 'Fixed colour range (±)' } });
const exportPngButton = h('button', { text: 'Export PNG', attrs: { id: 'pl-export-png', type: 'button' } });
const exportCsvButton = h('button', { text: 'Export CSV', attrs: { id: 'pl-export-csv', type: 'button' } });
const toolbar = h(
  'div',
  { className: 'pl-toolbar' },
  label('Sweep', sweepSelect),
  label('Colour range ±', rangeMode, rangeInput),
  h('span', { className: 'pl-spacer' }),
  exportPngButton,
  exportCsvButton,
);
const emptyEl = h('p', { className: 'pl-empty', text: 'Waiting for a result…' });
const colorBar = h('canvas', { className: 'pl-colorbar', attrs: { role: 'img', 'aria-label': 'colour scale' } });
const tooltip = h('div', { className: 'pl-tooltip', attrs: { id: 'pl-tooltip', role: 'tooltip' } });
tooltip.hidden = true;

const hover = new HoverSender((pos) => host.post({ type: 'hoverPosition', pos }));
const view = new HeatmapView({
  hoverPosition: (pos) => hover.set(pos),
  hoverCell: showTooltip,
});
const content = h('div', { className: 'pl-plot-content' }, view.element, colorBar);
const plot = h('div', { className: 'pl-plot' }, content);

const app = document.getElementById('app') ?? document.body.appendChild(h('div', { attrs: { id: 'app' } }));
app.append(h('header', { className: 'pl-header' }, titleEl, metaEl, noticesEl), toolbar, emptyEl, plot, tooltip);
setControlsEnabled(false);

// ---- rendering ---------------------------------------------------------------------------------
function setControlsEnabled(on: boolean): void {
  for (const c of [sweepSelect, rangeMode, rangeInput, exportPngButton, exportCsvButton]) c.disabled = !on;
  plot.hidden = !on;
}

function currentSweep(): ShownResult['result']['sweeps'][SweepName] {
  return shown && sweep ? shown.result.sweeps[sweep] : undefined;
}

/** The colour range: the typed number when fixed and valid, otherwise max |v| of the shown sweep. */
function currentRange(): number {
  const values = currentSweep()?.values ?? [];
  const auto = symmetricRange(values);
  rangeInput.placeholder = shortValue(auto);
  if (rangeMode.value !== 'fixed') {
    rangeInput.removeAttribute('aria-invalid');
    return auto;
  }
  const fixed = Number(rangeInput.value);
  const ok = rangeInput.value.trim() !== '' && Number.isFinite(fixed) && fixed > 0;
  if (ok) rangeInput.removeAttribute('aria-invalid');
  else rangeInput.setAttribute('aria-invalid', 'true');
  return ok ? symmetricRange(values, fixed) : auto;
}

function renderHeader(s: ShownResult): void {
  titleEl.textContent = s.result.name;
  titleEl.title = s.resultPath;
  clear(metaEl);
  const b = s.result.baselines;
  for (const part of summaryParts(s.result)) {
    const span = metaEl.appendChild(h('span', { text: part }));
    // The line rounds the baselines; hovering them gives the exact values.
    if (b && part.startsWith('clean ')) span.title = `clean ${exactValue(b.clean)}, corrupted ${exactValue(b.corrupted)}`;
  }
  metaEl.classList.toggle('pl-status-bad', s.result.status !== 'done');
  clear(noticesEl);
  for (const n of [...notices(s.result), ...s.problems]) noticesEl.appendChild(h('p', { className: 'pl-notice', text: n }));
  clear(sweepSelect);
  for (const name of s.sweeps) sweepSelect.appendChild(h('option', { text: name, attrs: { value: name } }));
  if (sweep) sweepSelect.value = sweep;
}

const COLOR_BAR_RESERVE = 90;
let renderedWidth = -1;

function renderSweep(): void {
  showTooltip(null);
  const data = currentSweep();
  if (!shown || !data) {
    view.destroy();
    setControlsEnabled(false);
    emptyEl.hidden = false;
    emptyEl.textContent = shown ? 'This run has no sweep results to show.' : 'Waiting for a result…';
    return;
  }
  emptyEl.hidden = true;
  setControlsEnabled(true);
  const theme = readTheme();
  const range = currentRange();
  renderedWidth = plot.clientWidth;
  view.render({
    sweep: data,
    tokens: shown.tokens,
    range,
    theme,
    highlight,
    width: Math.max(200, renderedWidth - COLOR_BAR_RESERVE),
    viewportHeight: window.innerHeight,
  });
  drawColorBar(colorBar, range, theme, Math.min(360, Math.max(80, view.plotHeight())));
  colorBar.style.marginTop = `${Math.max(0, view.plotTopOffset() - 6)}px`;
  app.dataset.sweep = sweep ?? '';
}

function updateRange(): void {
  if (!currentSweep()) return;
  const range = currentRange();
  view.setRange(range);
  drawColorBar(colorBar, range, readTheme(), Math.min(360, Math.max(80, view.plotHeight())));
}

function showTooltip(cell: HoveredCell | null): void {
  const data = currentSweep();
  if (!cell || !data || !shown) {
    tooltip.hidden = true;
    return;
  }
  tooltip.textContent = describeCell(data, shown.tokens, cell.facet.cells[cell.row][cell.col].index, cell.facet.values[cell.row][cell.col]);
  tooltip.hidden = false;
  // Beside the pointer, flipped to the other side near the window's right or bottom edge.
  const r = tooltip.getBoundingClientRect();
  const x = cell.clientX + 14 + r.width > window.innerWidth ? cell.clientX - 10 - r.width : cell.clientX + 14;
  const y = cell.clientY + 16 + r.height > window.innerHeight ? cell.clientY - 10 - r.height : cell.clientY + 16;
  tooltip.style.left = `${Math.max(0, x)}px`;
  tooltip.style.top = `${Math.max(0, y)}px`;
}

// ---- messages from the host --------------------------------------------------------------------
function onShowResult(s: ShownResult): void {
  const saved = host.getState();
  const previous = shown?.resultPath;
  shown = s;
  // A reloaded panel (or a result sent again) comes back to the sweep that was picked for this run.
  sweep = saved?.resultPath === s.resultPath && saved.sweep && s.sweeps.includes(saved.sweep) ? saved.sweep : s.sweeps[0];
  if (previous !== s.resultPath) highlight = null;
  host.setState(sweep ? { resultPath: s.resultPath, sweep } : { resultPath: s.resultPath });
  document.title = s.result.name;
  renderHeader(s);
  renderSweep();
}

function exportPng(): void {
  const data = currentSweep();
  if (!shown || !sweep || !data) {
    console.warn('PatchLens webview: no sweep shown, nothing to export');
    return;
  }
  const s = shown;
  const name = sweep;
  const dataUrl = view.withoutOverlays(() =>
    composePng({ title: `${s.result.name} — ${name}`, subtitle: summaryParts(s.result).join('   ·   '), theme: readTheme(), content }),
  );
  host.post({ type: 'exportPng', sweep: name, dataUrl });
}

function exportCsv(): void {
  const data = currentSweep();
  if (!sweep || !data) return;
  host.post({ type: 'exportCsv', sweep, csv: sweepCsv(data) });
}

window.addEventListener('message', (ev: MessageEvent) => {
  const m = parseHostMessage(ev.data);
  if (!m) return;
  switch (m.type) {
    case 'showResult':
      onShowResult(m.shown);
      break;
    case 'highlightPosition':
      highlight = m.pos;
      view.setHighlight(m.pos);
      break;
    case 'requestPng':
      exportPng();
      break;
  }
});

// ---- controls ----------------------------------------------------------------------------------
sweepSelect.addEventListener('change', () => {
  if (!shown || !shown.sweeps.includes(sweepSelect.value as SweepName)) return;
  sweep = sweepSelect.value as SweepName;
  host.setState({ resultPath: shown.resultPath, sweep });
  host.post({ type: 'selectSweep', sweep });
  hover.set(null);
  renderSweep();
});
rangeMode.addEventListener('change', updateRange);
rangeInput.addEventListener('input', () => {
  // Typing a number means "use this number".
  if (rangeInput.value.trim() !== '') rangeMode.value = 'fixed';
  updateRange();
});
exportPngButton.addEventListener('click', exportPng);
exportCsvButton.addEventListener('click', exportCsv);

let resizeTimer: ReturnType<typeof setTimeout> | undefined;
new ResizeObserver(() => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (currentSweep() && plot.clientWidth !== renderedWidth) renderSweep();
  }, 150);
}).observe(plot);
watchTheme(() => {
  if (currentSweep()) renderSweep();
});

// Last, once the listener is in place: the host holds its messages until this arrives.
host.post({ type: 'ready' });
