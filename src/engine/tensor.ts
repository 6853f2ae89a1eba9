/** A dense float32 tensor in row-major order (last axis fastest), as it crosses module boundaries. */
export interface Tensor32 {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function tensor32(shape: readonly number[], data?: Float32Array): Tensor32 {
  const n = numel(shape);
  if (data && data.length !== n) throw new Error(`tensor data has ${data.length} values, shape [${shape}] needs ${n}`);
  return { shape: [...shape], data: data ?? new Float32Array(n) };
}
