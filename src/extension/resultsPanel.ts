/**
 * The heatmap panels: one webview per result file, linked both ways to the text the prompts came from
 * (hovering a position column decorates its token in the editor; moving the cursor over a token
 * highlights its column), restored after a reload from the webview's saved state.
 */
import { writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as vscode from 'vscode';
import type { PatchResult } from '../protocol/result';
import type { SweepName } from '../protocol/spec';
import type { HostToWebview } from '../protocol/webviewMessages';
import { safeFileStem } from '../engine/resultFile';
import { pngFromDataUrl, positionAtOffset, sweepCsv, tokenRangesAt, validateWebviewMessage, validateWebviewState } from './panelModel';
import { readResultFile } from './resultStore';
import { makeNonce, webviewHtml } from './webviewHtml';

export const RESULTS_VIEW_TYPE = 'patchlens.results';

/** How a document is named in result.source: its path on disk, or its URI when it has none. */
export function documentKey(doc: vscode.TextDocument): string {
  return doc.uri.scheme === 'file' ? doc.uri.fsPath : doc.uri.toString();
}

class ResultPanel {
  private ready = false;
  private readonly pending: HostToWebview[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  sweep: SweepName | undefined;
  private onPng: ((png: Buffer, sweep: SweepName) => void) | undefined;

  constructor(
    readonly panel: vscode.WebviewPanel,
    readonly resultPath: string,
    public result: PatchResult,
    private readonly manager: ResultsPanels,
  ) {
    const webview = panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: manager.resourceRoots() };
    webview.html = manager.html(webview, result.name);
    panel.title = `PatchLens: ${result.name}`;
    panel.iconPath = vscode.Uri.joinPath(manager.extensionUri, 'media', 'patchlens.svg');
    this.disposables.push(
      webview.onDidReceiveMessage((m: unknown) => this.receive(m)),
      panel.onDidDispose(() => this.dispose()),
      // A hidden webview is torn down and sends `ready` again when shown: queue until then.
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
    );
  }

  post(m: HostToWebview): void {
    if (!this.ready) {
      // Only the latest highlight matters; a backlog of them would replay the cursor's path.
      if (m.type === 'highlightPosition') {
        const i = this.pending.findIndex((p) => p.type === 'highlightPosition');
        if (i >= 0) this.pending.splice(i, 1);
      }
      this.pending.push(m);
      return;
    }
    void this.panel.webview.postMessage(m);
  }

  private receive(raw: unknown): void {
    const v = validateWebviewMessage(raw);
    if (!v.ok) {
      this.manager.log(`ignored a message from the results webview: ${v.reason}`);
      return;
    }
    const m = v.message;
    switch (m.type) {
      case 'ready': {
        this.ready = true;
        void this.panel.webview.postMessage({ type: 'showResult', result: this.result, resultPath: this.resultPath } satisfies HostToWebview);
        for (const p of this.pending.splice(0)) void this.panel.webview.postMessage(p);
        break;
      }
      case 'hoverPosition':
        void this.manager.decorate(this, m.pos);
        break;
      case 'selectSweep':
        this.sweep = m.sweep;
        break;
      case 'exportPng': {
        const png = pngFromDataUrl(m.dataUrl);
        if (!png) {
          this.manager.log('ignored an exportPng whose data is not a PNG');
          break;
        }
        const waiting = this.onPng;
        this.onPng = undefined;
        if (waiting) waiting(png, m.sweep);
        else void this.manager.saveExport(this, `${m.sweep}.png`, png);
        break;
      }
      case 'exportCsv':
        void this.manager.saveExport(this, `${m.sweep}.csv`, Buffer.from(m.csv, 'utf8'));
        break;
    }
  }

  /** Asks the webview for a PNG of the shown sweep. */
  requestPng(): Promise<{ png: Buffer; sweep: SweepName }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.onPng = undefined;
        reject(new Error('the panel did not answer; show it and try again'));
      }, 15000);
      this.onPng = (png, sweep) => {
        clearTimeout(timer);
        resolve({ png, sweep });
      };
      this.panel.reveal(undefined, true);
      this.post({ type: 'requestPng' });
    });
  }

  dispose(): void {
    this.manager.forget(this);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}

export class ResultsPanels implements vscode.WebviewPanelSerializer {
  private readonly panels = new Set<ResultPanel>();
  private readonly decoration: vscode.TextEditorDecorationType;
  private decorated: vscode.TextEditor | undefined;
  private lastActive: ResultPanel | undefined;

  constructor(
    readonly extensionUri: vscode.Uri,
    readonly log: (line: string) => void,
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
      void vscode.window.showErrorMessage(`PatchLens: ${(e as Error).message}`);
      return;
    }
    const existing = [...this.panels].find((p) => p.resultPath === resultPath);
    if (existing) {
      existing.result = result;
      existing.post({ type: 'showResult', result, resultPath });
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
      this.log(`cannot show ${resultPath}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      void vscode.window.showErrorMessage(`PatchLens: cannot show the heatmaps (${(e as Error).message}); the result is saved in ${basename(resultPath)}.`);
    }
  }

  async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
    const s = validateWebviewState(state);
    let result: PatchResult | undefined;
    try {
      if (s) result = readResultFile(s.resultPath);
    } catch (e) {
      this.log(`cannot restore a results panel: ${(e as Error).message}`);
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
        this.log(`cannot open the prompts' source ${source}: ${(e as Error).message}`);
        return;
      }
    }
    const doc = editor.document;
    const length = doc.getText().length;
    const vsRanges = ranges
      .filter(([, b]) => b <= length)
      .map(([a, b]) => new vscode.Range(doc.positionAt(a), doc.positionAt(b)));
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
      writeFileSync(target.fsPath, bytes);
      void vscode.window.showInformationMessage(`PatchLens: exported ${basename(target.fsPath)}`);
    } catch (e) {
      void vscode.window.showErrorMessage(`PatchLens: cannot write ${target.fsPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  /** Export Heatmap: the shown sweep as PNG (drawn by the webview) or CSV, or the whole result as JSON. */
  async exportCurrent(format: 'png' | 'csv' | 'json'): Promise<void> {
    const p = this.current();
    if (!p) {
      void vscode.window.showWarningMessage('PatchLens: no heatmap panel is open; open a run from the PatchLens runs view first.');
      return;
    }
    const sweep = p.sweep ?? (Object.keys(p.result.sweeps)[0] as SweepName | undefined);
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
        void vscode.window.showErrorMessage(`PatchLens: PNG export failed: ${(e as Error).message}`);
      }
    }
  }
}
