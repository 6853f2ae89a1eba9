/**
 * The strongest effects beside (or under) a sweep's heatmaps. Each entry is a button: pointing at it or
 * focusing it outlines its cell in the heatmap and its token in the source, as hovering the cell does;
 * choosing it also scrolls the cell into view.
 */
import { type ColorScale, scaleColor } from '../src/presentation/colorScale';
import { shortValue } from '../src/presentation/resultText';
import type { Effect } from '../src/presentation/topEffects';
import { clear, h } from './dom';

export interface EffectsEvents {
  /** An entry is pointed at or focused (reveal: it was chosen); null: none any more. */
  show(effect: Effect | null, reveal: boolean): void;
}

export class EffectsList {
  readonly element: HTMLElement;
  private readonly note: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly title: HTMLElement;

  constructor(private readonly events: EffectsEvents) {
    this.note = h('p', { className: 'pl-effects-note' });
    this.list = h('ol', { className: 'pl-effects-list' });
    this.title = h('h2', { className: 'pl-effects-title', text: 'Strongest effects' });
    this.element = h('aside', { className: 'pl-effects', attrs: { 'aria-label': 'Strongest effects' } }, this.title, this.note, this.list);
  }

  /** `estimated`: an attribution run, whose values are first-order estimates rather than measured effects. */
  render(effects: readonly Effect[], scale: ColorScale, estimated = false): void {
    clear(this.list);
    this.title.textContent = estimated ? 'Strongest estimated effects' : 'Strongest effects';
    const from = scale.baselines ? `the ${scale.baselines.noneName} baseline (${shortValue(scale.neutral)})` : shortValue(scale.neutral);
    this.note.textContent = effects.length === 0 ? `No cell differs from ${from}.` : `The ${effects.length} cells furthest from ${from}.`;
    for (const e of effects) {
      const swatch = h('span', { className: 'pl-effect-swatch', attrs: { 'aria-hidden': 'true' } });
      const c = scaleColor(scale, e.value);
      if (c) swatch.style.background = `rgb(${c[0]},${c[1]},${c[2]})`;
      const button = h(
        'button',
        {
          className: 'pl-effect',
          attrs: { type: 'button', 'data-facet': String(e.facet), 'data-row': String(e.row), 'data-col': String(e.col), 'data-pos': e.pos === null ? '' : String(e.pos) },
        },
        swatch,
        h('span', { className: 'pl-effect-name', text: e.name }),
        h('span', { className: 'pl-effect-amount', text: e.amount }),
      );
      button.addEventListener('mouseenter', () => this.events.show(e, false));
      button.addEventListener('focus', () => this.events.show(e, false));
      button.addEventListener('mouseleave', () => {
        if (document.activeElement !== button) this.events.show(null, false);
      });
      button.addEventListener('blur', () => this.events.show(null, false));
      button.addEventListener('click', () => this.events.show(e, true));
      this.list.appendChild(h('li', {}, button));
    }
  }
}
