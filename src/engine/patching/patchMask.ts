import { type PatchSlot, slotPositions, slotSources } from './sweeps';

/** Which indices of each mask axis (after the batch row) a slot selects for one pair; undefined: all of them. */
function selectorFor(s: PatchSlot, pair: number): (readonly number[] | undefined)[] {
  const head = s.head === undefined ? undefined : [s.head];
  switch (s.layout) {
    case 'head':
      return [slotPositions(s, pair), head];
    case 'attn':
      return [head, slotPositions(s, pair), slotSources(s, pair)];
    default:
      return [slotPositions(s, pair)];
  }
}

/**
 * Calls `visit` with the flat index of each of the slot's cells in batch rows [rowStart, rowEnd) of a mask
 * of shape `dims`. Row r holds pair r − rowStart (a labelled slot selects each pair's own positions).
 * Residual-like masks are [row, pos], head vectors [row, pos, head], attention [row, head, dest, src].
 */
export function forEachSlotCell(dims: readonly number[], slot: PatchSlot, rowStart: number, rowEnd: number, visit: (cell: number) => void): void {
  const inner = dims.slice(1);
  const rowSize = inner.reduce((a, b) => a * b, 1);
  const strides = inner.map((_, i) => inner.slice(i + 1).reduce((a, b) => a * b, 1));
  for (let r = rowStart; r < rowEnd; r++) {
    const fixed = selectorFor(slot, r - rowStart);
    const walk = (axis: number, base: number): void => {
      if (axis === inner.length) {
        visit(base);
        return;
      }
      const f = fixed[axis];
      if (f !== undefined) for (const i of f) walk(axis + 1, base + i * strides[axis]!);
      else for (let i = 0; i < inner[axis]!; i++) walk(axis + 1, base + i * strides[axis]!);
    };
    walk(0, r * rowSize);
  }
}

/** Sets the slot's cells in batch rows [rowStart, rowEnd) of a mask of shape `dims` ([rows, ...]). */
export function markSlot(mask: Uint8Array, dims: readonly number[], slot: PatchSlot, rowStart: number, rowEnd: number): void {
  forEachSlotCell(dims, slot, rowStart, rowEnd, (c) => (mask[c] = 1));
}
