/**
 * What an attribution run adds under the heatmap: how the estimates were made and what they cost, and,
 * when exact patching verified some of them, a scatter of estimate against exact value (the cells marked
 * in the heatmap), their rank correlation and the largest miss.
 */
import { Chart, Legend, LinearScale, LineController, LineElement, PointElement, ScatterController } from 'chart.js';
import { shortValue } from '../src/presentation/resultText';
import type { AttributionInfo, SweepResult } from '../src/protocol/result';
import { clear, h } from './dom';
import type { Theme } from './theme';

Chart.register(ScatterController, LineController, PointElement, LineElement, LinearScale, Legend);

const METHOD_LABEL: Record<AttributionInfo['method'], string> = { atp: 'AtP', atp_star: 'AtP*' };

export class AttributionView {
  readonly element = h('section', { className: 'pl-attribution', attrs: { id: 'pl-attribution' } });
  private chart: Chart | undefined;

  /** `cellName` names a flat index of the sweep's values as the strongest-effects list does. */
  render(info: AttributionInfo | undefined, sweep: SweepResult | undefined, theme: Theme, cellName: (flat: number) => string = String): void {
    this.chart?.destroy();
    this.chart = undefined;
    clear(this.element);
    this.element.hidden = !info;
    if (!info) return;
    const method = METHOD_LABEL[info.method];
    this.element.appendChild(
      h('p', {
        className: 'pl-attribution-summary',
        text:
          `${method} estimates (${info.direction}): first-order, not measured; ${shortValue(info.forwardEquivalents)} forward-pass equivalents` +
          (info.verifyTop ? `; exact patching checked ${info.verifyTop} largest + ${info.verifyTop} random per sweep (dots in the heatmap)` : ''),
      }),
    );
    const ver = sweep?.verification;
    if (!ver || ver.cells.length === 0) return;
    const miss = ver.largestMiss;
    this.element.appendChild(
      h('p', {
        className: 'pl-attribution-verify',
        attrs: { 'data-spearman': ver.spearman === null ? '' : String(ver.spearman) },
        text:
          `Spearman ρ (estimate vs exact, ${ver.cells.length} cells): ${ver.spearman === null ? 'n/a' : ver.spearman.toFixed(3)}` +
          (miss ? `; largest miss at ${cellName(miss.index)}: estimate ${shortValue(miss.estimate)}, exact ${shortValue(miss.exact)}` : ''),
      }),
    );
    const canvas = h('canvas', { className: 'pl-scatter', attrs: { role: 'img', 'aria-label': 'estimate against exact value', width: '360', height: '260' } });
    this.element.appendChild(canvas);
    const all = ver.cells.flatMap((c) => [c.estimate, c.exact]);
    const lo = Math.min(...all);
    const hi = Math.max(...all);
    const point = (c: (typeof ver.cells)[number]) => ({ x: c.estimate, y: c.exact });
    const axis = (title: string) => ({
      type: 'linear' as const,
      title: { display: true, text: title, color: theme.text },
      ticks: { color: theme.muted },
      grid: { color: theme.border },
    });
    this.chart = new Chart(canvas, {
      type: 'scatter',
      data: {
        datasets: [
          { label: 'largest estimates', data: ver.cells.filter((c) => c.chosen === 'top').map(point), backgroundColor: '#d9480f', pointRadius: 4 },
          { label: 'random others', data: ver.cells.filter((c) => c.chosen === 'random').map(point), backgroundColor: '#1c7ed6', pointRadius: 4 },
          {
            type: 'line',
            label: 'estimate = exact',
            data: [
              { x: lo, y: lo },
              { x: hi, y: hi },
            ],
            borderColor: theme.muted,
            borderDash: [4, 4],
            pointRadius: 0,
            borderWidth: 1,
            showLine: true,
          },
        ],
      },
      options: {
        animation: false,
        responsive: false,
        plugins: { legend: { labels: { color: theme.text, boxWidth: 10 } } },
        scales: { x: axis('estimate'), y: axis('exact patching') },
      },
    });
  }
}
