/**
 * The component a heatmap cell patches, by name (src/protocol/components.ts), so that cells a reader
 * selects can be patched together as a patch set. Pattern cells have no component name and give
 * undefined. Pure: shared by the webview and its tests.
 */
import { componentName, type HeadPart, type LayerPart, LAYER_PARTS } from '../protocol/components';
import type { SweepResult } from '../protocol/result';

/** A stacked sweep's component label → the head part it patches ('pattern' has none). */
const HEAD_COMPONENTS: Readonly<Record<string, HeadPart>> = { output: 'z', query: 'q', key: 'k', value: 'v' };
/** A simple sweep's head part, from its name. */
const HEAD_SWEEP = /^attn_head_(out|q|k|v)_(all_pos|by_pos)$/;

export function cellComponent(name: string, sweep: SweepResult, index: readonly number[]): string | undefined {
  const at = (axis: string): number | undefined => {
    const k = sweep.axes.indexOf(axis);
    return k < 0 ? undefined : index[k];
  };
  const layer = at('layer');
  if (layer === undefined) return undefined;
  const pos = at('pos');
  const label = at('label');
  const where = pos !== undefined ? { at: pos } : label !== undefined ? { at: sweep.labels?.[label] ?? String(label) } : {};
  if (label !== undefined && sweep.labels?.[label] === undefined) return undefined;
  const head = at('head') ?? at('kv_head');
  const component = at('component') === undefined ? undefined : sweep.components?.[at('component')!];
  if ((LAYER_PARTS as readonly string[]).includes(component ?? name)) return componentName({ layer, part: (component ?? name) as LayerPart, ...where });
  if (head === undefined) return undefined;
  const part = component !== undefined ? HEAD_COMPONENTS[component] : ({ out: 'z', q: 'q', k: 'k', v: 'v' } as const)[HEAD_SWEEP.exec(name)?.[1] as 'out'];
  return part === undefined ? undefined : componentName({ layer, head, part, ...where });
}
