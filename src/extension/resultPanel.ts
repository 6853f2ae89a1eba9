/**
 * One results panel: the webview that shows one result file. It queues messages until the webview is
 * ready, checks what the webview sends, and passes hovers and exports to its host (PanelRegistry).
 */
import * as vscode from 'vscode';
import type { PatchResult } from '../protocol/result';
import type { PlotSpec, ResultSweepName } from '../protocol/spec';
import type { HostToWebview } from '../protocol/webviewMessages';
import { pngFromDataUrl, validateWebviewMessage } from './panelModel';

/** What a panel needs of the registry that owns it. */
export interface PanelHost {
  readonly extensionUri: vscode.Uri;
  log(line: string): void;
  resourceRoots(): vscode.Uri[];
  html(webview: vscode.Webview, title: string): string;
  decorate(p: ResultPanel, pos: number | null): Promise<void>;
  saveExport(p: ResultPanel, suffix: string, bytes: Buffer): Promise<void>;
  forget(p: ResultPanel): void;
  /** The colour scale last chosen for a run, kept across panels and window reloads. */
  rememberedPlot(resultPath: string): PlotSpec | undefined;
  rememberPlot(resultPath: string, plot: PlotSpec | null): void;
  /** Runs the panel's run again with these components patched together (the panel's "Patch together"). */
  patchTogether(p: ResultPanel, components: string[]): void;
}

export class ResultPanel {
  private ready = false;
  private readonly pending: HostToWebview[] = [];
  private readonly disposables: vscode.Disposable[] = [];
  sweep: ResultSweepName | undefined;
  private onPng: ((png: Buffer, sweep: ResultSweepName) => void) | undefined;

  constructor(
    readonly panel: vscode.WebviewPanel,
    readonly resultPath: string,
    public result: PatchResult,
    private readonly host: PanelHost,
  ) {
    const webview = panel.webview;
    webview.options = { enableScripts: true, localResourceRoots: host.resourceRoots() };
    webview.html = host.html(webview, result.name);
    panel.title = `PatchLens: ${result.name}`;
    panel.iconPath = vscode.Uri.joinPath(host.extensionUri, 'media', 'patchlens.svg');
    this.disposables.push(
      webview.onDidReceiveMessage((m: unknown) => this.receive(m)),
      panel.onDidDispose(() => this.dispose()),
      // A hidden webview is torn down and sends `ready` again when shown: queue until then.
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
    );
  }

  /** Shows the panel's run (again, when its file was rewritten), with the colour scale chosen for it. */
  showResult(): void {
    const plot = this.host.rememberedPlot(this.resultPath);
    this.post({ type: 'showResult', result: this.result, resultPath: this.resultPath, ...(plot ? { plot } : {}) });
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
      this.host.log(`ignored a message from the results webview: ${v.reason}`);
      return;
    }
    const m = v.message;
    switch (m.type) {
      case 'ready': {
        this.ready = true;
        // A showResult still queued is sent now, as this one: only the latest matters.
        const queued = this.pending.splice(0).filter((p) => p.type !== 'showResult');
        this.showResult();
        for (const p of queued) void this.panel.webview.postMessage(p);
        break;
      }
      case 'plotChoice':
        this.host.rememberPlot(this.resultPath, m.plot);
        break;
      case 'hoverPosition':
        void this.host.decorate(this, m.pos);
        break;
      case 'selectSweep':
        this.sweep = m.sweep;
        break;
      case 'exportPng': {
        const png = pngFromDataUrl(m.dataUrl);
        if (!png) {
          this.host.log('ignored an exportPng whose data is not a PNG');
          break;
        }
        const waiting = this.onPng;
        this.onPng = undefined;
        if (waiting) waiting(png, m.sweep);
        else void this.host.saveExport(this, `${m.sweep}.png`, png);
        break;
      }
      case 'exportCsv':
        void this.host.saveExport(this, `${m.sweep}.csv`, Buffer.from(m.csv, 'utf8'));
        break;
      case 'patchTogether':
        this.host.patchTogether(this, m.components);
        break;
    }
  }

  /** Asks the webview for a PNG of the shown sweep. */
  requestPng(): Promise<{ png: Buffer; sweep: ResultSweepName }> {
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
    this.host.forget(this);
    for (const d of this.disposables.splice(0)) d.dispose();
  }
}
