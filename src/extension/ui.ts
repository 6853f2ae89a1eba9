/**
 * The VS Code side of a run and of the selection flow: progress notifications, diagnostics, and the
 * quick picks and input boxes that ask for a model, for answers (showing how each is tokenized) and for
 * the method.
 */
import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative } from 'node:path';
import * as vscode from 'vscode';
import type { ModelFamily, ProgressParams, TokenizeResult } from '../protocol/engineRpc';
import type { MethodName } from '../protocol/spec';
import { BUILTIN_MODELS } from '../common/builtinModelNames';
import { METHOD_CHOICES, type MethodChoice } from './methodChoice';
import { describeTokens } from './promptSources';
import type { RunUi } from './runDispatcher';
import { errorMessage } from '../common/errorReason';

const PHASE_WORDS: Record<ProgressParams['phase'], string> = {
  download: 'downloading',
  load: 'loading',
  baseline: 'baselines',
  sweep: 'patching',
  write: 'writing',
};

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 10 * 2 ** 20 ? 1 : 0)} MB`;
}

export class VscodeRunUi implements RunUi {
  constructor(
    private readonly diagnostics: vscode.DiagnosticCollection,
    private readonly onResult: (path: string, showPanel: boolean) => void,
  ) {}

  withProgress<T>(title: string, onCancel: () => void, task: (report: (p: ProgressParams) => void) => Promise<T>): Promise<T> {
    return Promise.resolve(
      vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title, cancellable: true }, async (progress, token) => {
        const sub = token.onCancellationRequested(onCancel);
        // VS Code's bar only moves forward, in increments: track what was reported. The sweeps are
        // nearly all of a run's time, so the bar is their share; other phases only change the message.
        let shown = 0;
        try {
          return await task((p) => {
            let message = `${PHASE_WORDS[p.phase]}: ${p.message}`;
            let increment: number | undefined;
            if (p.total && p.total > 0 && p.done !== undefined) {
              const pct = Math.min(100, (100 * p.done) / p.total);
              if (p.phase === 'download') message += ` (${mib(p.done)} of ${mib(p.total)})`;
              else {
                message += ` ${p.done}/${p.total}`;
                if (pct > shown) {
                  increment = pct - shown;
                  shown = pct;
                }
              }
            }
            progress.report(increment !== undefined ? { message, increment } : { message });
          });
        } finally {
          sub.dispose();
        }
      }),
    );
  }

  info(message: string): void {
    void vscode.window.showInformationMessage(message);
  }

  error(message: string, location?: { file: string; offset: number; end: number }): void {
    void vscode.window.showErrorMessage(message);
    if (location) void this.markSpecError(location.file, location.offset, location.end, message);
  }

  /** A spec error as a diagnostic on the document it points into (the message stays in the notification too). */
  async markSpecError(file: string, offset: number, end: number, message: string): Promise<void> {
    const uri = vscode.Uri.file(file);
    const doc =
      vscode.workspace.textDocuments.find((d) => d.uri.fsPath === uri.fsPath) ??
      (await vscode.workspace.openTextDocument(uri).then(
        (d) => d,
        () => undefined,
      ));
    if (!doc) return;
    const range = new vscode.Range(doc.positionAt(offset), doc.positionAt(Math.max(end, offset + 1)));
    const d = new vscode.Diagnostic(range, message.replace(/^PatchLens: /, ''), vscode.DiagnosticSeverity.Error);
    d.source = 'PatchLens';
    this.diagnostics.set(uri, [d]);
  }

  resultWritten(path: string, outcome: { status: string } | undefined): void {
    this.onResult(path, outcome !== undefined && (outcome.status === 'done' || outcome.status === 'cancelled'));
  }
}

interface ModelItem extends vscode.QuickPickItem {
  readonly model?: string;
  readonly action?: 'browse';
}

/** The hub examples of each family the engine reads, under one separator per family. */
function hubItems(families: readonly ModelFamily[]): ModelItem[] {
  const items: ModelItem[] = [];
  for (const f of families) {
    if (f.examples.length === 0) continue;
    items.push({ label: `Hugging Face hub: ${f.label}`, kind: vscode.QuickPickItemKind.Separator });
    for (const e of f.examples) items.push({ label: e.id, detail: e.description, model: e.id });
  }
  return items;
}

/** Checkpoint folders in the workspace (config.json beside model.safetensors), relative to `workspaceRoot`. */
async function workspaceCheckpoints(workspaceRoot: string | undefined): Promise<ModelItem[]> {
  const found = await vscode.workspace.findFiles('**/model.safetensors', '**/{node_modules,.git}/**', 20).then(
    (u) => u,
    () => [],
  );
  const items: ModelItem[] = [];
  for (const u of found) {
    const dir = dirname(u.fsPath);
    const rel = workspaceRoot ? relative(workspaceRoot, dir) || '.' : dir;
    if (existsSync(join(dir, 'config.json'))) items.push({ label: rel, description: 'checkpoint folder', model: rel });
  }
  if (items.length > 0) items.unshift({ label: 'In this workspace', kind: vscode.QuickPickItemKind.Separator });
  return items;
}

/**
 * Asks for a model: the built-in ones, checkpoint folders in the workspace, each family's hub examples
 * (the engine's registry answers `families`), a folder picker, or whatever is typed (another hub id, a
 * path). The pick opens at once; the workspace search and the engine's answer are added as each arrives,
 * so neither a slow search nor a busy engine keeps the user waiting for the list. Folders inside the
 * workspace are returned relative to `workspaceRoot`, so the choice stays valid in a colleague's clone.
 */
export async function askModel(
  families: Promise<readonly ModelFamily[]>,
  workspaceRoot: string | undefined,
  current?: string,
  title = 'PatchLens: model to run',
): Promise<string | undefined> {
  const builtins: ModelItem[] = BUILTIN_MODELS.map((b) => ({ label: `${b.name} (built in)`, detail: b.description, model: b.name }));
  const tail: ModelItem[] = [
    { label: '', kind: vscode.QuickPickItemKind.Separator },
    { label: '$(folder-opened) Choose a checkpoint folder…', action: 'browse', alwaysShow: true },
  ];
  let local: ModelItem[] = [];
  let hub: ModelItem[] = [];
  let items: ModelItem[] = [];

  const qp = vscode.window.createQuickPick<ModelItem>();
  qp.title = title;
  qp.placeholder = 'A built-in model, a hub id (e.g. gpt2, meta-llama/Llama-3.2-1B), or a folder with config.json + model.safetensors; type any other';
  qp.matchOnDetail = true;
  const typed = (value: string): ModelItem[] =>
    value.trim() && !items.some((i) => i.model === value.trim())
      ? [{ label: value.trim(), description: 'use as typed (hub id or path)', model: value.trim(), alwaysShow: true }]
      : [];
  const refresh = (): void => {
    items = [...builtins, ...local, ...hub, ...tail];
    qp.items = [...typed(qp.value), ...items];
    if (current) qp.activeItems = items.filter((i) => i.model === current);
  };
  qp.onDidChangeValue((v) => (qp.items = [...typed(v), ...items]));
  refresh();
  let open = true;
  const add = <T>(arriving: Promise<T>, use: (v: T) => void): Promise<void> =>
    arriving.then((v) => {
      if (!open) return;
      use(v);
      refresh();
    });
  qp.busy = true;
  void Promise.all([
    add(workspaceCheckpoints(workspaceRoot), (l) => (local = l)),
    // An engine that cannot answer leaves the hub ids to be typed.
    add(
      families.catch((): readonly ModelFamily[] => []),
      (f) => (hub = hubItems(f)),
    ),
  ]).then(() => {
    if (open) qp.busy = false;
  });
  const picked = await new Promise<ModelItem | undefined>((resolve) => {
    qp.onDidAccept(() => resolve(qp.selectedItems[0]));
    qp.onDidHide(() => resolve(undefined));
    qp.show();
  });
  open = false;
  qp.dispose();
  if (!picked) return undefined;
  if (picked.action === 'browse') {
    const uris = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: false,
      openLabel: 'Use this model',
      title: 'A folder with config.json and model.safetensors',
      ...(workspaceRoot ? { defaultUri: vscode.Uri.file(workspaceRoot) } : {}),
    });
    const dir = uris?.[0]?.fsPath;
    if (!dir) return undefined;
    if (workspaceRoot) {
      const rel = relative(workspaceRoot, dir);
      if (!rel.startsWith('..') && !isAbsolute(rel)) return rel || '.';
    }
    return dir;
  }
  return picked.model;
}

/**
 * Asks how to run: exact patching, AtP, or AtP* with verification, starting on `current` (Enter keeps
 * it, `reason` says where it comes from). Undefined when the pick is dismissed.
 */
export async function askMethod(opts: { title: string; current: MethodName; reason: string; step?: number; totalSteps?: number }): Promise<MethodChoice | undefined> {
  type Item = vscode.QuickPickItem & { choice: MethodChoice };
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = opts.title;
  if (opts.step !== undefined) qp.step = opts.step;
  if (opts.totalSteps !== undefined) qp.totalSteps = opts.totalSteps;
  qp.placeholder = 'Exact patching, or attribution estimates of every index (much faster on large sweeps)';
  qp.ignoreFocusOut = true;
  qp.items = METHOD_CHOICES.map((choice) => ({
    label: choice.label,
    detail: choice.detail,
    choice,
    ...(choice.method === opts.current ? { description: `(${opts.reason})` } : {}),
  }));
  qp.activeItems = qp.items.filter((i) => i.choice.method === opts.current);
  const picked = await new Promise<Item | undefined>((resolve) => {
    qp.onDidAccept(() => resolve(qp.selectedItems[0]));
    qp.onDidHide(() => resolve(undefined));
    qp.show();
  });
  qp.dispose();
  return picked?.choice;
}

export type Tokenize = (text: string) => Promise<TokenizeResult['tokens'][number]>;

/** What to try when a word is not one token: byte-level vocabularies want the leading space, SentencePiece ones (Llama 2) put it there themselves. */
function answerHint(value: string): string {
  if (/^\S/.test(value)) return ' (try a leading space)';
  return /^\s+\S+$/.test(value) ? ' (try without the leading space: some tokenizers mark the start of a word themselves)' : '';
}

/**
 * Asks for one answer token in an input box that shows, as the user types, how the model tokenizes
 * it: `" Alice" → 1 token [14862]`. More than one token is an error the box will not accept.
 */
export async function askAnswer(opts: {
  title: string;
  prompt: string;
  value: string;
  candidates: string[];
  tokenize: Tokenize;
  step: number;
  totalSteps: number;
}): Promise<string | undefined> {
  const box = vscode.window.createInputBox();
  box.title = opts.title;
  box.step = opts.step;
  box.totalSteps = opts.totalSteps;
  box.prompt = opts.candidates.length > 0 ? `${opts.prompt} Candidates: ${opts.candidates.map((c) => JSON.stringify(c)).join(', ')}` : opts.prompt;
  box.placeholder = 'one token, usually a word with its leading space, e.g. " Alice"';
  box.value = opts.value;
  box.ignoreFocusOut = true;
  // The check of the box's current value: resolves to whether it is exactly one token.
  let current: { value: string; single: Promise<boolean> } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const check = (value: string): Promise<boolean> => {
    if (current?.value === value) return current.single;
    if (value === '') {
      box.validationMessage = undefined;
      current = { value, single: Promise.resolve(false) };
      return current.single;
    }
    box.busy = true;
    const mine = {
      value,
      single: opts.tokenize(value).then(
        (t) => {
          const single = t.ids.length === 1;
          if (current !== mine) return single;
          box.busy = false;
          const text = describeTokens(value, t);
          box.validationMessage = single
            ? { message: text, severity: vscode.InputBoxValidationSeverity.Info }
            : { message: `${text}; an answer must be exactly one token${answerHint(value)}`, severity: vscode.InputBoxValidationSeverity.Error };
          return single;
        },
        (e: unknown) => {
          if (current === mine) {
            box.busy = false;
            box.validationMessage = { message: `cannot tokenize: ${errorMessage(e)}`, severity: vscode.InputBoxValidationSeverity.Error };
          }
          return false;
        },
      ),
    };
    current = mine;
    return mine.single;
  };
  box.onDidChangeValue((v) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void check(v), 120);
  });
  void check(box.value);
  const accepted = await new Promise<string | undefined>((resolve) => {
    box.onDidAccept(() => {
      // Enter right after typing: wait for that text's tokenization rather than ignore the key.
      const value = box.value;
      void check(value).then((single) => {
        if (single && box.value === value) resolve(value);
      });
    });
    box.onDidHide(() => resolve(undefined));
    box.show();
  });
  if (timer) clearTimeout(timer);
  box.dispose();
  return accepted;
}
