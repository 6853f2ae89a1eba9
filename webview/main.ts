import '../media/panel.css';
import { type ColorScale, fractionText, sweepScale } from '../src/presentation/colorScale';
import { headGroups, type HeadGroups } from '../src/presentation/heads';
import { baselinesText, describeCell, exactValue, notices, summaryParts, sweepTitle } from '../src/presentation/resultText';
import { cellName, topEffects } from '../src/presentation/topEffects';
import { cellComponent } from '../src/presentation/cellComponent';
import type { PlotSpec, ResultSweepName } from '../src/protocol/spec';
import { plotProblem } from '../src/protocol/spec';
import { colorBarCssWidth, drawColorBar } from './colorBar';
import { sweepCsv } from './csv';
import { clear, h } from './dom';
import { AttributionView } from './attributionView';
import { EffectsList } from './effectsList';
import type { Facet } from '../src/presentation/heatmapLayout';
import { HeatmapView, planGrid } from './heatmapView';
import type { HoveredCell } from './heatmapView';
import { HoverSender } from './hover';
import { parseHostMessage } from './messages';
import type { ShownResult } from './messages';
import { PlotControls } from './plotControls';
import { composePng } from './pngExport';
import { readTheme, watchTheme } from './theme';
import { vscodeHost } from './vscodeApi';

const host = vscodeHost();

let shown: ShownResult | undefined;
let sweep: ResultSweepName | undefined;
let highlight: number | null = null;
/** The colour scale chosen in the panel for the shown run; undefined: the spec's. */
let choice: PlotSpec | undefined;
let scale: ColorScale | undefined;
let heads: HeadGroups | undefined;
/** The facets drawn, which the strongest-effects list points into. */
let facets: Facet[] = [];
/** Cells selected for "Patch together", across sweeps: `sweep|index` → the component the cell patches. */
const selection = new Map<string, string>();

// ---- the page ----------------------------------------------------------------------------------
const label = (text: string, ...controls: HTMLElement[]): HTMLElement => h('label', { className: 'pl-control' }, h('span', { text }), ...controls);

const titleEl = h('h1', { className: 'pl-title', text: 'PatchLens' });
const metaEl = h('p', { className: 'pl-meta' });
const noticesEl = h('div', { className: 'pl-notices', attrs: { role: 'status' } });
const sweepSelect = h('select', { attrs: { id: 'pl-sweep' } });
const plotControls = new PlotControls((plot) => {
  choice = plot;
  if (shown) host.post({ type: 'plotChoice', plot: plot ?? null });
  if (!plot) plotControls.set(specPlot());
  updateScale();
});
const exportPngButton = h('button', { text: 'Export PNG', attrs: { id: 'pl-export-png', type: 'button' } });
const exportCsvButton = h('button', { text: 'Export CSV', attrs: { id: 'pl-export-csv', type: 'button' } });
const patchButton = h('button', {
  text: 'Patch together',
  attrs: { id: 'pl-patch-together', type: 'button', title: 'Click cells to select them, then run the spec again with their components patched together' },
});
const clearButton = h('button', { text: 'Clear selection', attrs: { id: 'pl-clear-selection', type: 'button' } });
const selectionNote = h('span', { className: 'pl-selection-note', attrs: { id: 'pl-selection-note', role: 'status' } });
const toolbar = h(
  'div',
  { className: 'pl-toolbar' },
  label('Sweep', sweepSelect),
  patchButton,
  clearButton,
  selectionNote,
  h('span', { className: 'pl-spacer' }),
  exportPngButton,
  exportCsvButton,
  plotControls.element,
);
const emptyEl = h('p', { className: 'pl-empty', text: 'Waiting for a result…' });
const legendEl = h('div', { className: 'pl-legend', attrs: { id: 'pl-legend' } });
const colorBar = h('canvas', { className: 'pl-colorbar', attrs: { role: 'img', 'aria-label': 'colour scale' } });
const tooltip = h('div', { className: 'pl-tooltip', attrs: { id: 'pl-tooltip', role: 'tooltip' } });
tooltip.hidden = true;

const patchSetsEl = h('div', { className: 'pl-patch-sets', attrs: { id: 'pl-patch-sets' } });

const hover = new HoverSender((pos) => host.post({ type: 'hoverPosition', pos }));
const view = new HeatmapView({
  hoverPosition: (pos) => hover.set(pos),
  hoverCell: showTooltip,
  hoverLabel: (l) => (l ? placeTooltip(l.text, l.clientX, l.clientY) : showTooltip(null)),
  clickCell: toggleCell,
});
const effects = new EffectsList({
  show: (e, reveal) => {
    view.showCell(e ? { facet: e.facet, row: e.row, col: e.col } : null, reveal);
    hover.set(e ? e.pos : null);
  },
});
const content = h('div', { className: 'pl-plot-content' }, view.element, colorBar);
const plot = h('div', { className: 'pl-plot' }, content);
const body = h('div', { className: 'pl-body' }, plot, effects.element);
const attribution = new AttributionView();

const app = document.getElementById('app') ?? document.body.appendChild(h('div', { attrs: { id: 'app' } }));
app.append(h('header', { className: 'pl-header' }, titleEl, metaEl, noticesEl), patchSetsEl, toolbar, emptyEl, legendEl, body, attribution.element, tooltip);
setControlsEnabled(false);

// ---- rendering ---------------------------------------------------------------------------------
function setControlsEnabled(on: boolean): void {
  for (const c of [sweepSelect, exportPngButton, exportCsvButton]) c.disabled = !on;
  showSelection();
  plotControls.setEnabled(on);
  body.hidden = !on;
  legendEl.hidden = !on;
}

function currentSweep(): ShownResult['result']['sweeps'][ResultSweepName] {
  return shown && sweep ? shown.result.sweeps[sweep] : undefined;
}

/** The result's own plot settings, when they are usable (sweepScale says so when they are not). */
function specPlot(): PlotSpec | undefined {
  const p = shown?.result.spec?.plot;
  return p !== undefined && !plotProblem(p) ? p : undefined;
}

function renderHeader(s: ShownResult): void {
  titleEl.textContent = s.result.name;
  titleEl.title = s.resultPath;
  clear(metaEl);
  const b = s.result.baselines;
  for (const part of summaryParts(s.result)) {
    const span = metaEl.appendChild(h('span', { text: part }));
    // The line rounds the baselines; hovering them gives the exact values.
    if (b && part.startsWith('clean ')) span.title = baselinesText(b, exactValue);
  }
  metaEl.classList.toggle('pl-status-bad', s.result.status !== 'done');
  clear(noticesEl);
  for (const n of [...notices(s.result), ...s.problems]) noticesEl.appendChild(h('p', { className: 'pl-notice', text: n }));
  clear(sweepSelect);
  for (const name of s.sweeps) sweepSelect.appendChild(h('option', { text: sweepTitle(name, s.result.sweeps[name]), attrs: { value: name } }));
  if (sweep) sweepSelect.value = sweep;
  renderPatchSets(s);
}

/** A run's patch sets: name, components, value (and its share of the whole effect). */
function renderPatchSets(s: ShownResult): void {
  clear(patchSetsEl);
  const sets = s.result.patchSets ?? [];
  patchSetsEl.hidden = sets.length === 0;
  if (sets.length === 0) return;
  const setScale = sweepScale(
    s.result,
    sets.map((x) => x.value),
  );
  const table = h('table', { className: 'pl-patch-set-table' }, h('caption', { text: "Patch sets: each set's components patched together" }));
  table.appendChild(h('tr', {}, h('th', { text: 'set' }), h('th', { text: 'components' }), h('th', { text: 'value' })));
  for (const set of sets) {
    const fraction = set.value === null ? undefined : fractionText(setScale, set.value);
    const value = set.value === null ? 'not computed' : `${exactValue(set.value)}${fraction ? ` (${fraction})` : ''}`;
    table.appendChild(h('tr', { className: 'pl-patch-set' }, h('td', { text: set.name }), h('td', { text: set.components.join(' ') }), h('td', { text: value })));
  }
  patchSetsEl.appendChild(table);
}

/** Selecting a cell (or unselecting it) for "Patch together"; cells with no component (pattern entries) say so. */
function toggleCell(cell: { facet: Facet; index: number; row: number; col: number }): void {
  const data = currentSweep();
  if (!data || !sweep || cell.facet.values[cell.row]![cell.col] === null) return;
  const index = cell.facet.cells[cell.row]![cell.col]!.index;
  const key = `${sweep}|${index.join(',')}`;
  const component = cellComponent(sweep, data, index);
  if (selection.has(key)) selection.delete(key);
  else if (component) selection.set(key, component);
  else {
    selectionNote.textContent = 'An attention-pattern cell cannot be patched in a set; pick heads, positions or layers.';
    return;
  }
  showSelection();
}

/** The selection's count on the buttons, and its cells in the shown sweep outlined. */
function showSelection(): void {
  const n = selection.size;
  patchButton.disabled = n === 0;
  clearButton.disabled = n === 0;
  patchButton.textContent = n === 0 ? 'Patch together' : `Patch ${n} together`;
  selectionNote.textContent = n === 0 ? 'Click cells to patch them together.' : [...selection.values()].join(' ');
  const keys = new Set<string>();
  facets.forEach((f, fi) =>
    f.cells.forEach((row, r) =>
      row.forEach((c, col) => {
        if (selection.has(`${sweep}|${c.index.join(',')}`)) keys.add(`${fi},${r},${col}`);
      }),
    ),
  );
  view.setSelected(keys);
}

/** The strongest-effects list goes beside the heatmaps when that costs them nothing, else under them. */
const EFFECTS_W = 320;
const BODY_GAP = 24;
let renderedSize = '';

function renderSweep(): void {
  showTooltip(null);
  const data = currentSweep();
  if (!shown || !data) {
    view.destroy();
    attribution.render(undefined, undefined, readTheme());
    facets = [];
    setControlsEnabled(false);
    const onlySets = shown !== undefined && (shown.result.patchSets?.length ?? 0) > 0;
    emptyEl.hidden = onlySets;
    emptyEl.textContent = shown ? 'This run has no sweep results to show.' : 'Waiting for a result…';
    return;
  }
  emptyEl.hidden = true;
  setControlsEnabled(true);
  const theme = readTheme();
  scale = sweepScale(shown.result, data.values, choice);
  const total = body.clientWidth;
  renderedSize = `${total}x${window.innerHeight}`;
  const barW = colorBarCssWidth(scale, theme);
  const plan = (w: number) => planGrid(data, shown!.tokens, heads, theme, Math.max(120, w), window.innerHeight);
  const alone = plan(total - barW);
  const beside = plan(total - barW - EFFECTS_W - BODY_GAP);
  const besideFits = beside.cols === alone.cols && beside.sizes.cellW >= alone.sizes.cellW && beside.sizes.cellH >= alone.sizes.cellH;
  body.classList.toggle('pl-body-beside', besideFits);
  const grid = besideFits ? beside : alone;
  view.render({ sweep: data, tokens: shown.tokens, heads, scale, theme, highlight, width: total - barW, viewportHeight: window.innerHeight }, grid);
  facets = grid.facets;
  showSelection();
  showScale();
  const strides = data.shape.map((_, k) => data.shape.slice(k + 1).reduce((a, b) => a * b, 1));
  attribution.render(shown.result.attribution, data, theme, (flat) =>
    cellName(
      data,
      strides.map((st, k) => Math.floor(flat / st) % data.shape[k]!),
      shown!.tokens,
      heads,
    ),
  );
  app.dataset.sweep = sweep ?? '';
}

/** The colour bar, the legend, the controls' placeholders and the strongest effects, for the current scale. */
function showScale(): void {
  const data = currentSweep();
  if (!data || !shown || !scale) return;
  drawColorBar(colorBar, scale, readTheme(), Math.min(360, Math.max(80, view.plotHeight())));
  colorBar.style.marginTop = `${Math.max(0, view.plotTopOffset() - 6)}px`;
  clear(legendEl);
  legendEl.appendChild(h('p', { className: 'pl-legend-text', text: scale.legend }));
  for (const n of scale.notes) legendEl.appendChild(h('p', { className: 'pl-notice', text: n }));
  plotControls.showScale(scale);
  effects.render(topEffects(data, facets, scale, shown.tokens, heads), scale, shown.result.attribution !== undefined);
}

function updateScale(): void {
  const data = currentSweep();
  if (!data || !shown) return;
  scale = sweepScale(shown.result, data.values, choice);
  view.setScale(scale);
  showScale();
}

function placeTooltip(text: string, clientX: number, clientY: number): void {
  tooltip.textContent = text;
  tooltip.hidden = false;
  // Beside the pointer, flipped to the other side near the window's right or bottom edge.
  const r = tooltip.getBoundingClientRect();
  const x = clientX + 14 + r.width > window.innerWidth ? clientX - 10 - r.width : clientX + 14;
  const y = clientY + 16 + r.height > window.innerHeight ? clientY - 10 - r.height : clientY + 16;
  tooltip.style.left = `${Math.max(0, x)}px`;
  tooltip.style.top = `${Math.max(0, y)}px`;
}

function showTooltip(cell: HoveredCell | null): void {
  const data = currentSweep();
  if (!cell || !data || !shown) {
    tooltip.hidden = true;
    return;
  }
  const value = cell.facet.values[cell.row]![cell.col]!;
  const fraction = value === null || !scale ? undefined : fractionText(scale, value);
  const index = cell.facet.cells[cell.row]![cell.col]!.index;
  const text = describeCell(data, shown.tokens, index, value, { heads, ...(fraction ? { fraction } : {}) });
  // An attribution run's values are estimates; a verified cell also says what exact patching measured.
  const flat = index.reduce((f, x, k) => f * data.shape[k]! + x, 0);
  const checked = data.verification?.cells.find((c) => c.index === flat);
  const estimate = shown.result.attribution ? `${text} (estimate)${checked ? `; exact patching: ${exactValue(checked.exact)}` : ''}` : text;
  placeTooltip(estimate, cell.clientX, cell.clientY);
}

// ---- messages from the host --------------------------------------------------------------------
function onShowResult(s: ShownResult): void {
  const saved = host.getState();
  const previous = shown?.resultPath;
  shown = s;
  heads = headGroups(s.result.model.config);
  choice = s.plot;
  plotControls.set(choice ?? specPlot());
  // A reloaded panel (or a result sent again) comes back to the sweep that was picked for this run.
  sweep = saved?.resultPath === s.resultPath && saved.sweep && s.sweeps.includes(saved.sweep) ? saved.sweep : s.sweeps[0];
  if (previous !== s.resultPath) {
    highlight = null;
    selection.clear();
  }
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
  const lines = scale ? [scale.legend, ...scale.notes] : [];
  const dataUrl = view.withoutOverlays(() =>
    composePng({ title: `${s.result.name} — ${name}`, subtitle: summaryParts(s.result).join('   ·   '), lines, theme: readTheme(), content }),
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
  if (!shown || !shown.sweeps.includes(sweepSelect.value as ResultSweepName)) return;
  sweep = sweepSelect.value as ResultSweepName;
  host.setState({ resultPath: shown.resultPath, sweep });
  host.post({ type: 'selectSweep', sweep });
  hover.set(null);
  renderSweep();
});
exportPngButton.addEventListener('click', exportPng);
patchButton.addEventListener('click', () => {
  if (selection.size > 0) host.post({ type: 'patchTogether', components: [...new Set(selection.values())] });
});
clearButton.addEventListener('click', () => {
  selection.clear();
  showSelection();
});
exportCsvButton.addEventListener('click', exportCsv);

// A resized panel is laid out again: the width sets the cells and the facets per row, the height how flat they may be.
let resizeTimer: ReturnType<typeof setTimeout> | undefined;
const relayout = (): void => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (currentSweep() && `${body.clientWidth}x${window.innerHeight}` !== renderedSize) renderSweep();
  }, 150);
};
new ResizeObserver(relayout).observe(body);
window.addEventListener('resize', relayout);
watchTheme(() => {
  if (currentSweep()) renderSweep();
});

// Last, once the listener is in place: the host holds its messages until this arrives.
host.post({ type: 'ready' });
