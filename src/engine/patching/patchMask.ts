import type { PatchSlot } from './sweeps';

/**
 * Which activation index each mask axis (after the batch row) stands for, per hook layout: residual-like
 * masks are [row, pos], head vectors [row, pos, head], attention [row, head, dest, src].
 */
function selectorFor(s: PatchSlot): (number | undefined)[] {
  switch (s.layout) {
    case 'head':
      return [s.pos, s.head];
    case 'attn':
      return [s.head, s.dest, s.src];
    default:
      return [s.pos];
  }
}

/** Calls `visit` with the flat index of each of the slot's cells in batch rows [rowStart, rowEnd) of a mask of shape `dims`. */
export function forEachSlotCell(dims: readonly number[], slot: PatchSlot, rowStart: number, rowEnd: number, visit: (cell: number) => void): void {
  const fixed = selectorFor(slot);
  const inner = dims.slice(1);
  const rowSize = inner.reduce((a, b) => a * b, 1);
  const strides = inner.map((_, i) => inner.slice(i + 1).reduce((a, b) => a * b, 1));
  const walk = (axis: number, base: number): void => {
    if (axis === inner.length) {
      visit(base);
      return;
    }
    const f = fixed[axis];
    if (f !== undefined) walk(axis + 1, base + f * strides[axis]!);
    else for (let i = 0; i < inner[axis]!; i++) walk(axis + 1, base + i * strides[axis]!);
  };
  for (let r = rowStart; r < rowEnd; r++) walk(0, r * rowSize);
}

/** Sets the slot's cells in batch rows [rowStart, rowEnd) of a mask of shape `dims` ([rows, ...]). */
export function markSlot(mask: Uint8Array, dims: readonly number[], slot: PatchSlot, rowStart: number, rowEnd: number): void {
  forEachSlotCell(dims, slot, rowStart, rowEnd, (c) => (mask[c] = 1));
}
