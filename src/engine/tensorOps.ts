import type { Tensor32 } from './tensor';

/** Positions [start, end) of `axis` (the rest whole): a copy, since a slice of a row-major tensor is strided. */
export function sliceAxis(t: Tensor32, axis: number, start: number, end = t.shape[axis]!): Tensor32 {
  const outer = t.shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = t.shape[axis]!;
  const len = end - start;
  const data = new Float32Array(outer * len * inner);
  for (let o = 0; o < outer; o++) {
    data.set(t.data.subarray((o * n + start) * inner, (o * n + end) * inner), o * len * inner);
  }
  const shape = [...t.shape];
  shape[axis] = len;
  return { shape, data };
}

/** Repeats a tensor `copies` times along its first (batch) axis. */
export function tileRows(t: Tensor32, copies: number): Tensor32 {
  const data = new Float32Array(t.data.length * copies);
  for (let c = 0; c < copies; c++) data.set(t.data, c * t.data.length);
  return { shape: [t.shape[0]! * copies, ...t.shape.slice(1)], data };
}

/** Stacks tensors of equal trailing shape along the batch axis. */
export function concatRows(parts: readonly Tensor32[]): Tensor32 {
  const rows = parts.reduce((a, t) => a + t.shape[0]!, 0);
  const data = new Float32Array(parts.reduce((a, t) => a + t.data.length, 0));
  let at = 0;
  for (const t of parts) {
    data.set(t.data, at);
    at += t.data.length;
  }
  return { shape: [rows, ...parts[0]!.shape.slice(1)], data };
}

// Square tiles keep both the rows read and the rows written in cache while a large matrix is transposed.
const TILE = 64;

/**
 * Writes the transpose of `src` ([rows, cols], row-major) into columns [colOffset, colOffset + rows) of
 * `out` ([cols, outCols], row-major). An nn.Linear weight [out, in] becomes the [in, out] matrix that
 * `x @ W` needs; several such weights can fill one fused matrix side by side.
 */
export function transposeInto(src: Float32Array, rows: number, cols: number, out: Float32Array, outCols: number, colOffset = 0): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const from = r * cols;
        const to = colOffset + r;
        for (let c = c0; c < c1; c++) out[c * outCols + to] = src[from + c]!;
      }
    }
  }
}
