/**
 * The panel's colour-scale controls: the choices of the spec's `plot` object (centre: corrupted, clean, zero or
 * a number; zmin and zmax: auto, clean, corrupted or a number) and a reset to the spec's settings. A
 * setting that cannot be applied is marked on its control and explained beside them; the heatmap keeps
 * the last scale that could.
 */
import type { ColorScale } from '../src/presentation/colorScale';
import { shortValue } from '../src/presentation/resultText';
import { plotProblem, type PlotSpec } from '../src/protocol/spec';
import { h } from './dom';

type Key = keyof PlotSpec;

interface Control {
  readonly key: Key;
  readonly mode: HTMLSelectElement;
  readonly value: HTMLInputElement;
}

const option = (value: string, text = value): HTMLOptionElement => h('option', { text, attrs: { value } });

export class PlotControls {
  readonly element: HTMLElement;
  private readonly controls: Control[];
  private readonly reset: HTMLButtonElement;
  private readonly status: HTMLElement;

  /** `onChange(plot)`: settings chosen; `onChange(undefined)`: back to the spec's. */
  constructor(private readonly onChange: (plot: PlotSpec | undefined) => void) {
    const make = (key: Key, label: string, modes: HTMLOptionElement[]): Control => ({
      key,
      mode: h('select', { attrs: { id: `pl-${key}`, 'aria-label': `${label} of the colour scale` } }, ...modes),
      value: h('input', { attrs: { id: `pl-${key}-value`, type: 'number', step: 'any', 'aria-label': `${label} (a number)` } }),
    });
    this.controls = [
      make('center', 'White at', [option('auto'), option('corrupted'), option('clean'), option('zero'), option('number', 'number…')]),
      make('zmin', 'Lower end', [option('auto'), option('clean'), option('corrupted'), option('number', 'number…')]),
      make('zmax', 'Upper end', [option('auto'), option('clean'), option('corrupted'), option('number', 'number…')]),
    ];
    this.reset = h('button', { text: 'Reset', attrs: { id: 'pl-plot-reset', type: 'button', title: "Back to the spec's plot settings (or the metric's defaults)" } });
    this.status = h('span', { className: 'pl-plot-status', attrs: { id: 'pl-plot-status', role: 'status' } });
    const labels = ['White at', 'Min', 'Max'];
    this.element = h(
      'div',
      { className: 'pl-plot-controls', attrs: { role: 'group', 'aria-label': 'Colour scale' } },
      h('span', { className: 'pl-plot-controls-title', text: 'Colour scale' }),
      ...this.controls.map((c, i) => h('label', { className: 'pl-control' }, h('span', { text: labels[i]! }), c.mode, c.value)),
      this.reset,
      this.status,
    );
    for (const c of this.controls) {
      c.mode.addEventListener('change', () => {
        // "number…" starts from the value in use, so the choice is valid at once.
        if (c.mode.value === 'number' && c.value.value.trim() === '') c.value.value = c.value.placeholder;
        this.showModes();
        this.changed();
      });
      c.value.addEventListener('input', () => {
        // Typing a number means "use this number".
        if (c.value.value.trim() !== '') c.mode.value = 'number';
        this.showModes();
        this.changed();
      });
    }
    this.reset.addEventListener('click', () => this.onChange(undefined));
  }

  /** Shows `plot` in the controls (without reporting a change). */
  set(plot: PlotSpec | undefined): void {
    for (const c of this.controls) {
      const v = plot?.[c.key];
      c.mode.value = typeof v === 'number' ? 'number' : (v ?? 'auto');
      c.value.value = typeof v === 'number' ? String(v) : '';
    }
    this.showModes();
    this.mark(undefined);
  }

  /** The values in use, as the number fields' placeholders. */
  showScale(scale: ColorScale): void {
    const [center, zmin, zmax] = this.controls;
    center!.value.placeholder = shortValue(scale.center);
    zmin!.value.placeholder = shortValue(scale.zmin);
    zmax!.value.placeholder = shortValue(scale.zmax);
  }

  setEnabled(on: boolean): void {
    for (const c of this.controls) c.mode.disabled = c.value.disabled = !on;
    this.reset.disabled = !on;
  }

  private showModes(): void {
    for (const c of this.controls) c.value.hidden = c.mode.value !== 'number';
  }

  private changed(): void {
    const plot: Record<string, unknown> = {};
    for (const c of this.controls) {
      const m = c.mode.value;
      if (m === 'auto') continue;
      if (m !== 'number') {
        plot[c.key] = m;
        continue;
      }
      const n = Number(c.value.value);
      if (c.value.value.trim() === '' || !Number.isFinite(n)) {
        this.mark({ key: c.key, message: `write a number for ${c.key}` });
        return;
      }
      plot[c.key] = n;
    }
    const problem = plotProblem(plot);
    this.mark(problem);
    if (!problem) this.onChange(plot as PlotSpec);
  }

  private mark(problem: { key?: Key; message: string } | undefined): void {
    for (const c of this.controls) {
      if (problem && (problem.key ?? 'center') === c.key) {
        c.mode.setAttribute('aria-invalid', 'true');
        c.value.setAttribute('aria-invalid', 'true');
      } else {
        c.mode.removeAttribute('aria-invalid');
        c.value.removeAttribute('aria-invalid');
      }
    }
    this.status.textContent = problem ? `Not applied: ${problem.message}.` : '';
  }
}
