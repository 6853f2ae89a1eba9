/**
 * The PatchLens side view: the engine's state, the window's queued and running runs, and the result
 * files in the results folder(s), newest first. A file that is not a readable result is listed as
 * such (it can be deleted or opened as text), never an error.
 */
import { basename } from 'node:path';
import * as vscode from 'vscode';
import type { EngineStatus } from '../protocol/engineRpc';
import type { QueueEntry } from './runQueue';
import { type RunHistory, type RunFileEntry, runContents, type RunSummary } from './runHistory';

export type RunsNode =
  | { readonly kind: 'engine' }
  | { readonly kind: 'queued'; readonly entry: QueueEntry }
  | { readonly kind: 'folder'; readonly folder: string }
  | { readonly kind: 'file'; readonly entry: RunFileEntry }
  | { readonly kind: 'empty'; readonly message: string };

export interface RunsViewSources {
  readonly history: RunHistory;
  /** The folders to list (one per workspace folder, plus any a run of this session wrote to). */
  folders(): string[];
  queue(): QueueEntry[];
  engine(): Promise<{ pid: number | undefined; status: EngineStatus | undefined }>;
}

/** '5 min ago', '2 h ago', or the date: the tree is glanced at, not read. */
export function relativeTime(iso: string, now = Date.now()): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(t).toISOString().slice(0, 10);
}

const STATUS_ICONS: Record<RunSummary['status'], [string, string]> = {
  done: ['pass', 'testing.iconPassed'],
  cancelled: ['circle-slash', 'testing.iconSkipped'],
  failed: ['error', 'testing.iconFailed'],
};

export class RunsView implements vscode.TreeDataProvider<RunsNode> {
  private readonly changed = new vscode.EventEmitter<RunsNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly sources: RunsViewSources) {}

  /** Coalesces bursts (a run writes, the watcher fires, the queue changes) into one repaint. */
  refresh(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.changed.fire(undefined);
    }, 100);
  }

  dispose(): void {
    if (this.timer) clearTimeout(this.timer);
    this.changed.dispose();
  }

  getChildren(node?: RunsNode): RunsNode[] {
    if (!node) {
      const folders = this.sources.folders();
      const top: RunsNode[] = [{ kind: 'engine' }, ...this.sources.queue().map((entry): RunsNode => ({ kind: 'queued', entry }))];
      if (folders.length > 1) return [...top, ...folders.map((folder): RunsNode => ({ kind: 'folder', folder }))];
      const files = folders[0] ? this.files(folders[0]) : [];
      if (files.length === 0 && top.length === 1) {
        return [...top, { kind: 'empty', message: 'No runs yet: select two prompts and run "PatchLens: Patch Selected Prompts", or open an example.' }];
      }
      return [...top, ...files];
    }
    if (node.kind === 'folder') return this.files(node.folder);
    return [];
  }

  private files(folder: string): RunsNode[] {
    return this.sources.history.list(folder).map((entry): RunsNode => ({ kind: 'file', entry }));
  }

  async getTreeItem(node: RunsNode): Promise<vscode.TreeItem> {
    switch (node.kind) {
      case 'engine': {
        const { pid, status } = await this.sources.engine().catch(() => ({ pid: undefined, status: undefined }));
        const item = new vscode.TreeItem('Engine');
        if (pid === undefined) {
          item.description = 'not running (starts with the next run)';
          item.iconPath = new vscode.ThemeIcon('circle-outline');
        } else {
          const model = status?.model ? `${status.model.id} on ${status.model.provider}` : 'no model loaded';
          item.description = `${model}${status?.running.length ? ' · running' : ''}`;
          item.tooltip = `Engine process ${pid}\nModel: ${model}`;
          item.iconPath = new vscode.ThemeIcon(status?.running.length ? 'loading~spin' : 'server-process');
        }
        item.contextValue = 'patchlens.engine';
        return item;
      }
      case 'queued': {
        const item = new vscode.TreeItem(node.entry.label);
        const running = node.entry.state === 'running';
        item.description = running ? 'running' : 'queued';
        item.iconPath = new vscode.ThemeIcon(running ? 'sync~spin' : 'clock');
        item.contextValue = 'patchlens.queued';
        item.id = `queue:${node.entry.id}`;
        return item;
      }
      case 'folder': {
        const item = new vscode.TreeItem(basename(node.folder), vscode.TreeItemCollapsibleState.Expanded);
        item.tooltip = node.folder;
        item.iconPath = vscode.ThemeIcon.Folder;
        return item;
      }
      case 'empty':
        return new vscode.TreeItem(node.message);
      case 'file': {
        const e = node.entry;
        if (e.kind === 'unreadable') {
          const item = new vscode.TreeItem(basename(e.path));
          item.description = 'unreadable';
          item.tooltip = e.reason;
          item.iconPath = new vscode.ThemeIcon('warning', new vscode.ThemeColor('problemsWarningIcon.foreground'));
          item.resourceUri = vscode.Uri.file(e.path);
          item.contextValue = 'patchlens.unreadable';
          item.command = { command: 'vscode.open', title: 'Open as text', arguments: [vscode.Uri.file(e.path)] };
          return item;
        }
        const item = new vscode.TreeItem(e.name);
        item.id = `run:${e.path}`;
        item.description = [e.model, runContents(e), relativeTime(e.createdAt), e.status].filter(Boolean).join(' · ');
        const tip = new vscode.MarkdownString(undefined, false);
        tip.appendText(`${e.name} — ${e.status}${e.message ? `: ${e.message}` : ''}\n\n`);
        const sets = e.patchSets > 0 ? `\npatch sets ${e.patchSets}` : '';
        tip.appendText(`model ${e.model}\nsweeps ${e.sweeps.join(', ') || '(none)'}${sets}\n${e.createdAt}\n${e.path}`);
        item.tooltip = tip;
        const [icon, color] = STATUS_ICONS[e.status];
        item.iconPath = new vscode.ThemeIcon(icon, new vscode.ThemeColor(color));
        item.contextValue = `patchlens.run.${e.status}${e.source ? '.withSource' : ''}`;
        item.command = { command: 'patchlens.openRun', title: 'Open', arguments: [node] };
        return item;
      }
    }
  }
}
