/**
 * Names of model components, as patch sets list them and as the panel writes them for
 * the cells a reader selects: `L9H6` (head 6's output in layer 9, hook_z), `L9H6.q` / `.k` / `.v` (its
 * query, key or value; for k and v the head counts key/value heads, as the k/v sweeps' axes do),
 * `L3.resid_pre` (or resid_mid, resid_post, attn_out, mlp_out), each at every position, or at one with
 * `@14` (a token position, BOS counted) or `@IO` (a label: each pair at its own positions). Pure: no Node.
 */

export const HEAD_PARTS = ['z', 'q', 'k', 'v'] as const;
export type HeadPart = (typeof HEAD_PARTS)[number];
export const LAYER_PARTS = ['resid_pre', 'resid_mid', 'resid_post', 'attn_out', 'mlp_out'] as const;
export type LayerPart = (typeof LAYER_PARTS)[number];

export interface Component {
  readonly layer: number;
  /** A head's output or input; absent for a layer's activation. */
  readonly head?: number;
  readonly part: HeadPart | LayerPart;
  /** Where: a position (number) or a label; absent: every position. */
  readonly at?: number | string;
}

/** The JSON schema's pattern for a component (kept equal to parseComponent by a unit test). */
export const COMPONENT_PATTERN =
  '^L(0|[1-9][0-9]*)(H(0|[1-9][0-9]*)(\\.(z|out|q|k|v))?|\\.(resid_pre|resid_mid|resid_post|attn_out|mlp_out))(@(0|[1-9][0-9]*|[A-Za-z_][A-Za-z0-9_]*))?$';
const PATTERN = new RegExp(COMPONENT_PATTERN);

/** A component, or undefined when `text` is not one. */
export function parseComponent(text: string): Component | undefined {
  const m = PATTERN.exec(text);
  if (!m) return undefined;
  const layer = Number(m[1]);
  const at = m[8] === undefined ? undefined : /^\d/.test(m[8]) ? Number(m[8]) : m[8];
  const where = at === undefined ? {} : { at };
  if (m[3] !== undefined) {
    const part = (m[5] === undefined || m[5] === 'out' ? 'z' : m[5]) as HeadPart;
    return { layer, head: Number(m[3]), part, ...where };
  }
  return { layer, part: m[6] as LayerPart, ...where };
}

/** The canonical name of a component (`L9H6`, `L9H6.q`, `L3.mlp_out@IO`). */
export function componentName(c: Component): string {
  const unit = c.head === undefined ? `L${c.layer}.${c.part}` : `L${c.layer}H${c.head}${c.part === 'z' ? '' : `.${c.part}`}`;
  return c.at === undefined ? unit : `${unit}@${c.at}`;
}

/** What a name that is not a component should have been, for messages. */
export const COMPONENT_HELP =
  'a component is LxHy (a head\'s output), LxHy.q, .k or .v, or Lx.resid_pre, .resid_mid, .resid_post, .attn_out or .mlp_out, optionally @POSITION or @LABEL, e.g. "L9H6" or "L3.mlp_out@END"';
