/**
 * CSV export of one sweep in long form, one row per cell, so that `pandas.read_csv(...).pivot(...)` or
 * a spreadsheet rebuilds any view of it. Values are written exactly (see exactValue).
 */
import type { SweepResult } from '../src/protocol/result';
import { exactValue } from '../src/presentation/resultText';

/** RFC 4180 quoting, for the names that could hold a comma or a quote. */
function field(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Header: the sweep's axis names and `value`. Index columns hold integers, except the component axis
 * of *_every sweeps, which holds the component's name (resid_pre, attn_out, ...) when the result has
 * them. Rows in row-major order (last axis fastest), as the result file stores the values.
 */
export function sweepCsv(sweep: SweepResult): string {
  const { shape, axes, values } = sweep;
  const lines = [[...axes, 'value'].map(field).join(',')];
  const n = shape.reduce((a, b) => a * b, 1);
  const index = new Array<number>(shape.length).fill(0);
  for (let flat = 0; flat < n; flat++) {
    const cols = index.map((i, k) => (axes[k] === 'component' && sweep.components?.[i] !== undefined ? field(sweep.components[i]) : String(i)));
    // An index the model does not have (null) is an empty field, which pandas reads as NaN.
    const v = flat < values.length ? values[flat] : NaN;
    cols.push(v === null ? '' : exactValue(v ?? NaN));
    lines.push(cols.join(','));
    for (let k = shape.length - 1; k >= 0; k--) {
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  return lines.join('\n') + '\n';
}
