import type { PatchResult } from './result';
import type { PlotSpec, ResultSweepName } from './spec';

/**
 * Messages between the extension host and the results webview. The webview sends `ready` first; the
 * host queues everything until then. Every message has a `type`; each side ignores (and logs) messages
 * it does not know or whose fields are wrong.
 */

/** Host -> webview. */
export type HostToWebview =
  /**
   * Show a run. `resultPath` identifies it for state restore; `plot` is the colour scale last chosen
   * in a panel for this run (absent: the spec's `plot`, or the metric's defaults).
   */
  | { readonly type: 'showResult'; readonly result: PatchResult; readonly resultPath: string; readonly plot?: PlotSpec }
  /** The editor cursor sits on token `pos` of the shown run's prompts (null: none): highlight that column. */
  | { readonly type: 'highlightPosition'; readonly pos: number | null }
  /** Ask the webview to export the shown sweep as PNG (it replies with `exportPng`). */
  | { readonly type: 'requestPng' };

/** Webview -> host. */
export type WebviewToHost =
  | { readonly type: 'ready' }
  /** The pointer is over position column `pos` of the shown sweep (null: left the chart). */
  | { readonly type: 'hoverPosition'; readonly pos: number | null }
  /** The user picked another sweep (kept so the panel restores to it). */
  | { readonly type: 'selectSweep'; readonly sweep: ResultSweepName }
  /** The colour scale chosen for this run, remembered for it; null: back to the spec's (forget the choice). */
  | { readonly type: 'plotChoice'; readonly plot: PlotSpec | null }
  /** Export of the shown sweep: a PNG as a data: URL, or CSV text. */
  | { readonly type: 'exportPng'; readonly sweep: ResultSweepName; readonly dataUrl: string }
  | { readonly type: 'exportCsv'; readonly sweep: ResultSweepName; readonly csv: string }
  /** Run the shown run's spec again with the selected cells' components patched together (one patch set). */
  | { readonly type: 'patchTogether'; readonly components: string[] };

/** What the webview keeps with vscode.setState, so a reloaded panel comes back as it was. */
export interface WebviewState {
  readonly resultPath: string;
  readonly sweep?: ResultSweepName;
}
