/**
 * The open results panels: opening one per result file (or revealing it), restoring them after a
 * reload, knowing which one an export means, and linking them to the prompts' text both ways (hovering
 * a position column decorates its token in the editor; moving the cursor over a token highlights its
 * column).
 */
import { basename, dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { PatchResult } from '../protocol/result';
import { plotProblem, type PlotSpec, type ResultSweepName } from '../protocol/spec';
import { readResultFile } from '../common/resultFile';
import { safeFileStem } from '../common/fileName';
import { replaceFile } from '../common/fileWrite';
import { positionAtOffset, sweepCsv, tokenRangesAt, validateWebviewState } from './panelModel';
import { type PanelHost, ResultPanel } from './resultPanel';
import { makeNonce, webviewHtml } from './webviewHtml';
import { errnoReason, errorDetail, errorMessage } from '../common/errorReason';

export const RESULTS_VIEW_TYPE = 'patchlens.results';
/** workspaceState key of the colour scales chosen per run: { [resultPath]: PlotSpec }. */
const PLOT_CHOICES_KEY = 'patchlens.plotChoices';
/** Runs whose choice is kept; the oldest choice goes first. */
const MAX_PLOT_CHOICES = 500;

/** How a document is named in result.source: its path on disk, or its URI when it has none. */
export function documentKey(doc: vscode.TextDocument): string {
  return doc.uri.scheme === 'file' ? doc.uri.fsPath : doc.uri.toString();
}

export class PanelRegistry implements vscode.WebviewPanelSerializer, PanelHost {
  private readonly panels = new Set<ResultPanel>();
  private readonly decoration: vscode.TextEditorDecorationType;
  private decorated: vscode.TextEditor | undefined;
  private lastActive: ResultPanel | undefined;

  constructor(
    readonly extensionUri: vscode.Uri,
    readonly log: (line: string) => void,
    private readonly memory: vscode.Memento,
  ) {
    // fontWeight makes VS Code wrap exactly the decorated characters in their own span (an inline
    // decoration), on top of the background: the token stands out even in high-contrast themes.
    this.decoration = vscode.window.createTextEditorDecorationType({
      backgroundColor: new vscode.ThemeColor('editor.findMatchHighlightBackground'),
      border: '1px solid',
      borderColor: new vscode.ThemeColor('editor.findMatchBorder'),
      fontWeight: 'bold',
      overviewRulerColor: new vscode.ThemeColor('editorOverviewRuler.findMatchForeground'),
      overviewRulerLane: vscode.OverviewRulerLane.Center,
    });
  }

  register(): vscode.Disposable {
    return vscode.Disposable.from(
      this.decoration,
      vscode.window.registerWebviewPanelSerializer(RESULTS_VIEW_TYPE, this),
      vscode.window.onDidChangeTextEditorSelection((e) => this.cursorMoved(e)),
      { dispose: () => [...this.panels].forEach((p) => p.panel.dispose()) },
    );
  }

  resourceRoots(): vscode.Uri[] {
    return [vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(this.extensionUri, 'media')];
  }

  html(webview: vscode.Webview, title: string): string {
    return webviewHtml({
      scriptUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', 'main.js')).toString(),
      styleUri: webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', 'main.css')).toString(),
      cspSource: webview.cspSource,
      nonce: makeNonce(),
      title,
    });
  }

  /** Shows a result file: its panel if one is open (reloaded, in case it was rewritten), else a new one. */
  show(resultPath: string, preserveFocus = false): void {
    let result: PatchResult;
    try {
      result = readResultFile(resultPath);
    } catch (e) {
      void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
      return;
    }
    const existing = [...this.panels].find((p) => p.resultPath === resultPath);
    if (existing) {
      existing.result = result;
      existing.showResult();
      existing.panel.reveal(undefined, preserveFocus);
      return;
    }
    // Results gather in one column (beside the text the first time), not one new column per run.
    const column = [...this.panels].map((p) => p.panel.viewColumn).find((c) => c !== undefined) ?? vscode.ViewColumn.Beside;
    const panel = vscode.window.createWebviewPanel(
      RESULTS_VIEW_TYPE,
      `PatchLens: ${result.name}`,
      { viewColumn: column, preserveFocus },
      { enableScripts: true, localResourceRoots: this.resourceRoots() },
    );
    try {
      this.track(new ResultPanel(panel, resultPath, result, this));
    } catch (e) {
      // The result file is written; only its display failed, so the run itself is not lost.
      panel.dispose();
      this.log(`cannot show ${resultPath}: ${errorDetail(e)}`);
      void vscode.window.showErrorMessage(`PatchLens: cannot show the heatmaps (${errorMessage(e)}); the result is saved in ${basename(resultPath)}.`);
    }
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const s = validateWebviewState(state);
    let result: PatchResult | undefined;
    try {
      if (s) result = readResultFile(s.resultPath);
    } catch (e) {
      this.log(`cannot restore a results panel: ${errorMessage(e)}`);
    }
    if (!s || !result) {
      // The result file was deleted or moved since: a blank panel would only confuse.
      panel.dispose();
      return;
    }
    const p = new ResultPanel(panel, s.resultPath, result, this);
    if (s.sweep) p.sweep = s.sweep;
    this.track(p);
  }

  private track(p: ResultPanel): void {
    this.panels.add(p);
    this.lastActive = p;
    p.panel.onDidChangeViewState((e) => {
      if (e.webviewPanel.active) this.lastActive = p;
    });
  }

  forget(p: ResultPanel): void {
    this.panels.delete(p);
    if (this.lastActive === p) this.lastActive = [...this.panels].pop();
    if (this.panels.size === 0) this.clearDecoration();
  }

  rememberedPlot(resultPath: string): PlotSpec | undefined {
    const plot = this.memory.get<Record<string, unknown>>(PLOT_CHOICES_KEY)?.[resultPath];
    return plot !== undefined && !plotProblem(plot) ? (plot as PlotSpec) : undefined;
  }

  /** What "Patch together" does: set by the extension's wiring, which owns the runs. */
  onPatchTogether: ((result: PatchResult, resultPath: string, components: string[]) => void) | undefined;

  patchTogether(p: ResultPanel, components: string[]): void {
    if (!this.onPatchTogether) {
      this.log('ignored "patch together": no run dispatcher');
      return;
    }
    this.onPatchTogether(p.result, p.resultPath, components);
  }

  rememberPlot(resultPath: string, plot: PlotSpec | null): void {
    const all = { ...(this.memory.get<Record<string, PlotSpec>>(PLOT_CHOICES_KEY) ?? {}) };
    delete all[resultPath];
    if (plot) all[resultPath] = plot;
    const keys = Object.keys(all);
    for (const k of keys.slice(0, Math.max(0, keys.length - MAX_PLOT_CHOICES))) delete all[k];
    void this.memory.update(PLOT_CHOICES_KEY, all);
  }

  /** The panel an export command means: the active one, else the last one used. */
  current(): ResultPanel | undefined {
    return [...this.panels].find((p) => p.panel.active) ?? this.lastActive;
  }

  /** Panels showing results of `path`, when it was deleted. */
  closeFor(resultPath: string): void {
    for (const p of [...this.panels]) if (p.resultPath === resultPath) p.panel.dispose();
  }

  private clearDecoration(): void {
    if (this.decorated) this.decorated.setDecorations(this.decoration, []);
    this.decorated = undefined;
  }

  /** Decorates position `pos`'s token in the prompts' source document, opening it beside if needed. */
  async decorate(p: ResultPanel, pos: number | null): Promise<void> {
    const source = p.result.source;
    if (pos === null || !source) {
      this.clearDecoration();
      return;
    }
    const ranges = tokenRangesAt(p.result, pos);
    if (ranges.length === 0) {
      this.clearDecoration();
      return;
    }
    let editor = vscode.window.visibleTextEditors.find((e) => documentKey(e.document) === source);
    if (!editor) {
      try {
        const uri = /^[a-z][a-z0-9+.-]+:/i.test(source) && !/^[a-z]:[\\/]/i.test(source) ? vscode.Uri.parse(source) : vscode.Uri.file(source);
        const doc = await vscode.workspace.openTextDocument(uri);
        const column = p.panel.viewColumn === vscode.ViewColumn.One ? vscode.ViewColumn.Two : vscode.ViewColumn.One;
        editor = await vscode.window.showTextDocument(doc, { viewColumn: column, preserveFocus: true, preview: true });
      } catch (e) {
        this.log(`cannot open the prompts' source ${source}: ${errorMessage(e)}`);
        return;
      }
    }
    const doc = editor.document;
    const length = doc.getText().length;
    const vsRanges = ranges.filter(([, b]) => b <= length).map(([a, b]) => new vscode.Range(doc.positionAt(a), doc.positionAt(b)));
    if (this.decorated && this.decorated !== editor) this.decorated.setDecorations(this.decoration, []);
    editor.setDecorations(this.decoration, vsRanges);
    this.decorated = editor;
    if (vsRanges[0]) editor.revealRange(vsRanges[0], vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private cursorMoved(e: vscode.TextEditorSelectionChangeEvent): void {
    // Our own reveal moves no cursor, but a command that does (e.g. go to line) is not the user's pointing.
    if (e.kind === vscode.TextEditorSelectionChangeKind.Command) return;
    const key = documentKey(e.textEditor.document);
    const offset = e.textEditor.document.offsetAt(e.selections[0]!.active);
    for (const p of this.panels) {
      if (p.result.source !== key) continue;
      p.post({ type: 'highlightPosition', pos: positionAtOffset(p.result, offset) });
    }
  }

  /** The save dialog for an export, starting in the run's folder. */
  async saveExport(p: ResultPanel, suffix: string, bytes: Buffer): Promise<void> {
    const stem = basename(p.resultPath).replace(/\.result\.json$/, '');
    const target = await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(join(dirname(p.resultPath), `${safeFileStem(stem)}-${suffix}`)),
      filters: suffix.endsWith('.png') ? { 'PNG image': ['png'] } : suffix.endsWith('.csv') ? { CSV: ['csv'] } : { JSON: ['json'] },
      title: 'PatchLens: export heatmap',
    });
    if (!target) return;
    try {
      // The user chose (and confirmed) the path; a symlink there is replaced, not written through.
      replaceFile(target.fsPath, bytes);
      void vscode.window.showInformationMessage(`PatchLens: exported ${basename(target.fsPath)}`);
    } catch (e) {
      void vscode.window.showErrorMessage(`PatchLens: cannot write ${target.fsPath} (${errnoReason(e)})`);
    }
  }

  /** Export Heatmap: the shown sweep as PNG (drawn by the webview) or CSV, or the whole result as JSON. */
  async exportCurrent(format: 'png' | 'csv' | 'json'): Promise<void> {
    const p = this.current();
    if (!p) {
      void vscode.window.showWarningMessage('PatchLens: no heatmap panel is open; open a run from the PatchLens runs view first.');
      return;
    }
    const sweep = p.sweep ?? (Object.keys(p.result.sweeps)[0] as ResultSweepName | undefined);
    if (format === 'json') {
      await this.saveExport(p, 'result.json', Buffer.from(JSON.stringify(p.result, null, 1) + '\n'));
    } else if (!sweep) {
      void vscode.window.showWarningMessage('PatchLens: this run has no sweep to export.');
    } else if (format === 'csv') {
      await this.saveExport(p, `${sweep}.csv`, Buffer.from(sweepCsv(p.result, sweep), 'utf8'));
    } else {
      try {
        const { png, sweep: shown } = await p.requestPng();
        await this.saveExport(p, `${shown}.png`, png);
      } catch (e) {
        void vscode.window.showErrorMessage(`PatchLens: PNG export failed: ${errorMessage(e)}`);
      }
    }
  }
}
