/**
 * The commands: each turns editor state into a run request (or acts on runs and panels). The logic
 * they share lives in the pure modules (promptSources, runDispatcher, runHistory, settings).
 */
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import { DEVICE_SETTINGS, type EngineStatus, type RunParams } from '../protocol/engineRpc';
import { type MethodName, type PatchSpec, SPEC_FILE_SUFFIX } from '../protocol/spec';
import { parseSpecText } from '../spec/parseSpec';
import { SpecError } from '../spec/specError';
import { NEW_SPEC_TEMPLATE } from '../spec/specTemplate';
import type { EngineClient } from './engineClient';
import { answerCandidates, readSelection, selectionRunName, selectionSource, singleTokenForms, specDefaultName } from './promptSources';
import { documentKey, type PanelRegistry } from './panelRegistry';
import { patchTogetherSpec } from './panelModel';
import type { PatchResult } from '../protocol/result';
import { readResultFile } from '../common/resultFile';
import { readTextFile, SPEC_FILE } from '../common/fileRead';
import { createNewFile, replaceFile } from '../common/fileWrite';
import type { RunDispatcher } from './runDispatcher';
import type { RunsNode } from './runsView';
import { engineSettings, type PatchLensSettings, resultsFolderFor } from './settings';
import { defaultMethod, defaultReason, methodParams } from './methodChoice';
import { askAnswer, askMethod, askModel, type VscodeRunUi } from './ui';
import { errnoReason, errorDetail, errorMessage } from '../common/errorReason';

export interface Services {
  readonly context: vscode.ExtensionContext;
  readonly log: vscode.LogOutputChannel;
  readonly engine: EngineClient;
  readonly runs: RunDispatcher;
  readonly panels: PanelRegistry;
  readonly ui: VscodeRunUi;
  readonly diagnostics: vscode.DiagnosticCollection;
  settings(): PatchLensSettings;
  /** Called when a run is submitted, with the folder its result goes to (the runs view lists it). */
  noteResultsFolder(folder: string): void;
  refreshRuns(): void;
}

function workspaceRoot(uri?: vscode.Uri): string | undefined {
  const folder = (uri && vscode.workspace.getWorkspaceFolder(uri)) ?? vscode.workspace.workspaceFolders?.[0];
  return folder?.uri.scheme === 'file' ? folder.uri.fsPath : undefined;
}

/**
 * A model named in settings or picked in a dialog is relative to the workspace; the engine resolves
 * relative names against the spec's folder, so a folder that exists under the workspace is made absolute.
 */
function modelForRun(model: string, root: string | undefined): string {
  if (isAbsolute(model) || !root) return model;
  const p = join(root, model);
  return existsSync(join(p, 'config.json')) ? p : model;
}

async function settingsModel(s: Services, root: string | undefined, title: string): Promise<string | undefined> {
  const configured = s.settings().model;
  if (configured) return configured;
  const picked = await askModel(s.engine.modelFamilies(), root, undefined, title);
  if (picked) {
    // Remembered, so the next selection runs without asking; Select Model changes it.
    await vscode.workspace
      .getConfiguration('patchlens')
      .update('model', picked, vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
    void vscode.window.showInformationMessage(`PatchLens: using ${picked} (saved as the patchlens.model setting; change it with "PatchLens: Select Model").`);
  }
  return picked;
}

/** A spec error as the user sees it: a notification, and a diagnostic when it points into a file. */
function reportSpecError(s: Services, e: unknown): void {
  if (e instanceof SpecError && e.location && existsSync(e.location.file)) {
    void s.ui.markSpecError(e.location.file, e.location.offset, e.location.end, e.message);
  }
  void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
}

/**
 * The method to run `name` by, asked with the patchlens.method setting (else the spec's) first: the run's
 * method and verify_top parameters, or undefined when the pick is dismissed.
 */
async function chooseMethod(
  s: Services,
  name: string,
  spec: Pick<PatchSpec, 'method' | 'verify_top'>,
  step?: { step: number; totalSteps: number },
): Promise<{ method: MethodName; verifyTop?: number } | undefined> {
  const setting = s.settings().method;
  const choice = await askMethod({ title: `PatchLens: run ${name} by`, current: defaultMethod(setting, spec.method), reason: defaultReason(setting, spec.method), ...step });
  return choice && methodParams(choice, spec.verify_top);
}

async function pickSpecFile(): Promise<vscode.Uri | undefined> {
  const active = vscode.window.activeTextEditor?.document;
  if (active && active.uri.path.endsWith(SPEC_FILE_SUFFIX)) return active.uri;
  const files = await vscode.workspace.findFiles(`**/*${SPEC_FILE_SUFFIX}`, '**/node_modules/**', 200);
  if (files.length === 0) {
    void vscode.window.showWarningMessage('PatchLens: no .patch.json file in the workspace; create one with "PatchLens: New Patch File" or "PatchLens: Open Example".');
    return undefined;
  }
  const picked = await vscode.window.showQuickPick(
    files.map((u) => ({ label: basename(u.fsPath), description: vscode.workspace.asRelativePath(u), uri: u })),
    { title: 'PatchLens: run which patch file?' },
  );
  return picked?.uri;
}

export async function runPatchFile(s: Services, uri?: vscode.Uri): Promise<void> {
  const target = uri instanceof vscode.Uri ? uri : await pickSpecFile();
  if (!target) return;
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
  const specFile = target.fsPath;
  let text: string;
  try {
    text = open ? open.getText() : readTextFile(specFile, SPEC_FILE);
  } catch (e) {
    void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
    return;
  }
  let spec: PatchSpec;
  try {
    spec = parseSpecText(text, specFile);
  } catch (e) {
    reportSpecError(s, e);
    return;
  }
  s.diagnostics.delete(target);
  const root = workspaceRoot(target);
  let model: string | undefined;
  if (!spec.model) {
    model = await settingsModel(s, root, `PatchLens: ${basename(specFile)} names no model; run it on`);
    if (!model) return;
    model = modelForRun(model, root);
  }
  const settings = s.settings();
  const outDir = resultsFolderFor(settings, root, dirname(specFile));
  const name = spec.name ?? specDefaultName(specFile);
  const method = await chooseMethod(s, name, spec);
  if (!method) return;
  const params: Omit<RunParams, 'runId'> = {
    specFile,
    ...(open ? { specText: text } : {}),
    ...(model ? { model } : {}),
    outDir,
    ...engineSettings(settings, root),
    ...method,
  };
  s.noteResultsFolder(outDir);
  s.runs.submit({ label: name, params, spec, name, outDir, source: specFile, modelId: model ?? spec.model ?? '' });
}

/**
 * The panel's "Patch together": the shown run's spec again, with the selected cells' components as one
 * patch set instead of its sweeps, on the same model, from where the run's prompts came (so a dataset or
 * a model folder named relative to the spec resolves as it did), into the run's folder.
 */
export function patchTogether(s: Services, result: PatchResult, resultPath: string, components: string[]): void {
  const spec = patchTogetherSpec(result, components);
  const specFile = result.source && isAbsolute(result.source) ? result.source : resultPath;
  const outDir = dirname(resultPath);
  // A folder the run named relative to somewhere else (--model in a terminal) is read where it was found.
  const model = result.model.location?.kind === 'folder' ? result.model.location.dir : result.model.id;
  // Sets are patched exactly, whatever patchlens.method estimates sweeps with.
  const { method: _method, ...settings } = engineSettings(s.settings(), workspaceRoot(vscode.Uri.file(specFile)));
  const params: Omit<RunParams, 'runId'> = { specFile, specText: JSON.stringify(spec, null, 2), model, outDir, ...settings };
  s.runs.submit({ label: spec.name!, params, spec, name: spec.name!, outDir, source: specFile, modelId: model });
}

export async function patchSelection(s: Services): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.selection.isEmpty) {
    void vscode.window.showWarningMessage('PatchLens: select two prompts first — the clean one, then the corrupted one, as two lines or two paragraphs (or a JSON spec).');
    return;
  }
  const doc = editor.document;
  const text = doc.getText();
  const sel = editor.selection;
  let req;
  try {
    req = readSelection(text, doc.offsetAt(sel.start), doc.offsetAt(sel.end));
  } catch (e) {
    void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
    return;
  }
  const root = workspaceRoot(doc.uri);
  const docKey = documentKey(doc);
  // The engine anchors relative model paths and names at the spec file; an unsaved document has none.
  const specFile = doc.uri.scheme === 'file' ? doc.uri.fsPath : join(root ?? tmpdir(), `${basename(doc.uri.path) || 'untitled'}`);
  const settings = s.settings();
  const outDir = resultsFolderFor(settings, root, dirname(specFile));
  const base = { outDir, ...engineSettings(settings, root) };

  if (req.kind === 'spec') {
    let model: string | undefined;
    if (!req.spec.model) {
      model = await settingsModel(s, root, 'PatchLens: the selected spec names no model; run it on');
      if (!model) return;
      model = modelForRun(model, root);
    }
    const name = req.spec.name ?? specDefaultName(specFile);
    const method = await chooseMethod(s, name, req.spec);
    if (!method) return;
    s.noteResultsFolder(outDir);
    s.runs.submit({
      label: name,
      params: { specFile, specText: req.specText, ...(model ? { model } : {}), ...base, ...method },
      spec: req.spec,
      name,
      outDir,
      source: specFile,
      modelId: model ?? req.spec.model ?? '',
    });
    return;
  }

  const picked = await settingsModel(s, root, 'PatchLens: model to run the selected prompts on');
  if (!picked) return;
  const model = modelForRun(picked, root);
  const tokenize = async (t: string) => {
    const r = await s.engine.tokenize({ model, baseDir: dirname(specFile), texts: [t], ...engineSettings(settings, root) });
    return r.tokens[0]!;
  };
  const candidates = await singleTokenForms(answerCandidates(req.clean.text, req.corrupted.text), tokenize);
  const answer = await askAnswer({
    title: 'PatchLens: the answer',
    prompt: 'The token the clean prompt should predict next.',
    value: candidates[0] ?? '',
    candidates,
    tokenize,
    step: 1,
    totalSteps: 3,
  });
  if (answer === undefined) return;
  const wrong = await askAnswer({
    title: 'PatchLens: the wrong answer',
    prompt: 'The token the corrupted prompt should predict instead (the metric is logit(answer) − logit(wrong)).',
    value: candidates.find((c) => c !== answer) ?? '',
    candidates: candidates.filter((c) => c !== answer),
    tokenize,
    step: 2,
    totalSteps: 3,
  });
  if (wrong === undefined) return;
  const name = selectionRunName(docKey, sel.start.line + 1);
  const method = await chooseMethod(s, name, {}, { step: 3, totalSteps: 3 });
  if (!method) return;
  const selection = selectionSource(docKey, req.clean, req.corrupted, { model, answer, wrong, sweeps: settings.selectionSweeps, name });
  s.noteResultsFolder(outDir);
  s.runs.submit({ label: name, params: { specFile, selection, ...base, ...method }, spec: selection.spec, name, outDir, source: docKey, modelId: model });
}

export async function newPatchFile(): Promise<void> {
  const root = workspaceRoot();
  const target = await vscode.window.showSaveDialog({
    title: 'PatchLens: new patch file',
    ...(root ? { defaultUri: vscode.Uri.file(join(root, `experiment${SPEC_FILE_SUFFIX}`)) } : {}),
    filters: { 'PatchLens spec': ['patch.json'] },
  });
  if (!target) return;
  const path = target.fsPath.endsWith(SPEC_FILE_SUFFIX) ? target.fsPath : `${target.fsPath.replace(/\.json$/, '')}${SPEC_FILE_SUFFIX}`;
  replaceFile(path, NEW_SPEC_TEMPLATE);
  await vscode.window.showTextDocument(vscode.Uri.file(path));
}

/** Copies a shipped example into the workspace (never over an existing file) and opens it. */
export async function openExample(s: Services, fileName?: string): Promise<void> {
  const dir = s.context.asAbsolutePath('examples');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(SPEC_FILE_SUFFIX))
    .sort();
  let file = typeof fileName === 'string' && files.includes(fileName) ? fileName : undefined;
  if (!file) {
    const items = files.map((f) => {
      let detail = '';
      try {
        const spec = JSON.parse(readFileSync(join(dir, f), 'utf8')) as PatchSpec;
        detail = `${spec.model ?? ''} · ${spec.description ?? ''}`;
      } catch {
        /* an example is shipped JSON; a bad one still shows by name */
      }
      return { label: f, detail, file: f };
    });
    file = (await vscode.window.showQuickPick(items, { title: 'PatchLens: open which example?', matchOnDetail: true }))?.file;
    if (!file) return;
  }
  const root = workspaceRoot();
  if (!root) {
    await vscode.window.showTextDocument(vscode.Uri.file(join(dir, file)));
    void vscode.window.showInformationMessage('PatchLens: open a folder to keep a copy of the example and its runs.');
    return;
  }
  const target = join(root, file);
  // An example's dataset goes with it, so that the copy runs as it is.
  const dataset = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as PatchSpec).dataset;
  for (const f of [file, ...(dataset !== undefined && basename(dataset) === dataset ? [dataset] : [])]) {
    try {
      createNewFile(join(root, f), readFileSync(join(dir, f)));
    } catch (e) {
      // A file of that name is kept as it is (the user's copy, possibly edited).
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  await vscode.window.showTextDocument(vscode.Uri.file(target));
}

export async function selectModel(s: Services): Promise<void> {
  const config = vscode.workspace.getConfiguration('patchlens');
  const picked = await askModel(s.engine.modelFamilies(), workspaceRoot(), config.get<string>('model'));
  if (!picked) return;
  await config.update('model', picked, vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}

const DEVICE_DETAILS: Record<(typeof DEVICE_SETTINGS)[number], string> = {
  auto: 'the fastest available GPU provider, else the CPU',
  cpu: 'always available',
  webgpu: 'WebGPU (bundled on Linux x64, Windows, macOS)',
  cuda: 'NVIDIA CUDA (needs the CUDA libraries installed)',
  dml: 'DirectML (Windows)',
  coreml: 'Core ML (macOS)',
};

export async function selectDevice(): Promise<void> {
  const config = vscode.workspace.getConfiguration('patchlens');
  const current = config.get<string>('device') ?? 'auto';
  const picked = await vscode.window.showQuickPick(
    DEVICE_SETTINGS.map((d) => ({ label: d, description: d === current ? '(current)' : '', detail: DEVICE_DETAILS[d] })),
    { title: 'PatchLens: execution device' },
  );
  if (picked) await config.update('device', picked.label, vscode.workspace.workspaceFolders ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global);
}

export async function cancelRun(s: Services, node?: RunsNode): Promise<void> {
  if (node && node.kind === 'queued') {
    s.runs.cancel(node.entry.id);
    return;
  }
  const entries = s.runs.entries();
  if (entries.length === 0) {
    void vscode.window.showInformationMessage('PatchLens: no run is in progress.');
    return;
  }
  if (entries.length === 1) {
    s.runs.cancel(entries[0]!.id);
    return;
  }
  const picked = await vscode.window.showQuickPick(
    entries.map((e) => ({ label: e.label, description: e.state, id: e.id })),
    { title: 'PatchLens: cancel which run?' },
  );
  if (picked) s.runs.cancel(picked.id);
}

export async function exportHeatmap(s: Services): Promise<void> {
  const picked = await vscode.window.showQuickPick(
    [
      { label: 'PNG', detail: 'the shown sweep as an image', format: 'png' as const },
      { label: 'CSV', detail: 'the shown sweep as a table, laid out as the heatmap', format: 'csv' as const },
      { label: 'JSON', detail: 'the whole result file', format: 'json' as const },
    ],
    { title: 'PatchLens: export the heatmap as' },
  );
  if (picked) await s.panels.exportCurrent(picked.format);
}

function nodePath(node: unknown): string | undefined {
  const n = node as RunsNode | undefined;
  if (n?.kind === 'file') return n.entry.path;
  if (node instanceof vscode.Uri) return node.fsPath;
  return typeof node === 'string' ? node : undefined;
}

export async function revealSpec(node: unknown): Promise<void> {
  const path = nodePath(node);
  if (!path) return;
  let result;
  try {
    result = readResultFile(path);
  } catch (e) {
    void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
    return;
  }
  if (!result.source) {
    void vscode.window.showInformationMessage('PatchLens: this run does not record where its prompts came from.');
    return;
  }
  const uri = /^[a-z][a-z0-9+.-]+:/i.test(result.source) && !/^[a-z]:[\\/]/i.test(result.source) ? vscode.Uri.parse(result.source) : vscode.Uri.file(result.source);
  try {
    const editor = await vscode.window.showTextDocument(uri);
    // Select the prompts' span so the reader lands on them, not on the file's first line.
    const ranges = result.tokens.flatMap((p) => [...p.clean.ranges, ...(p.corrupted?.ranges ?? [])]).filter((r): r is [number, number] => r !== null);
    if (ranges.length > 0) {
      const doc = editor.document;
      const start = Math.min(...ranges.map((r) => r[0]));
      const end = Math.max(...ranges.map((r) => r[1]));
      if (end <= doc.getText().length) {
        editor.selection = new vscode.Selection(doc.positionAt(start), doc.positionAt(end));
        editor.revealRange(editor.selection, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
      }
    }
  } catch (e) {
    void vscode.window.showErrorMessage(`PatchLens: cannot open ${result.source} (${errorMessage(e)})`);
  }
}

export async function deleteRun(s: Services, node: unknown): Promise<void> {
  const path = nodePath(node);
  if (!path) return;
  const ok = await vscode.window.showWarningMessage(`Delete the run ${basename(path)}?`, { modal: true }, 'Delete');
  if (ok !== 'Delete') return;
  try {
    unlinkSync(path);
  } catch (e) {
    void vscode.window.showErrorMessage(`PatchLens: cannot delete ${path} (${errnoReason(e)})`);
  }
  s.panels.closeFor(path);
  s.refreshRuns();
}

export async function engineStatus(s: Services): Promise<{ pid: number | undefined; status: EngineStatus | undefined }> {
  const status = await s.engine.status().catch(() => undefined);
  const pid = s.engine.pid;
  const model = status?.model ? `${status.model.id} on ${status.model.provider}` : 'no model loaded';
  void vscode.window.showInformationMessage(pid === undefined ? 'PatchLens engine: not running (it starts with the next run).' : `PatchLens engine: process ${pid}, ${model}.`);
  return { pid, status };
}

/** Checks .patch.json files as they are opened and saved, so a mistake is underlined before a run. */
export function watchSpecDiagnostics(s: Services): vscode.Disposable {
  const check = (doc: vscode.TextDocument) => {
    if (!doc.uri.path.endsWith(SPEC_FILE_SUFFIX) || doc.uri.scheme !== 'file') return;
    try {
      parseSpecText(doc.getText(), doc.uri.fsPath);
      s.diagnostics.delete(doc.uri);
    } catch (e) {
      if (e instanceof SpecError && e.location) void s.ui.markSpecError(doc.uri.fsPath, e.location.offset, e.location.end, e.message);
    }
  };
  vscode.workspace.textDocuments.forEach(check);
  return vscode.Disposable.from(
    vscode.workspace.onDidOpenTextDocument(check),
    vscode.workspace.onDidSaveTextDocument(check),
    vscode.workspace.onDidCloseTextDocument((d) => s.diagnostics.delete(d.uri)),
  );
}

export function registerCommands(s: Services): vscode.Disposable {
  const reg = (id: string, fn: (...args: unknown[]) => unknown) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        s.log.error(`${id} failed: ${errorDetail(e)}`);
        void vscode.window.showErrorMessage(`PatchLens: ${errorMessage(e)}`);
        return undefined;
      }
    });
  return vscode.Disposable.from(
    reg('patchlens.patchSelection', () => patchSelection(s)),
    reg('patchlens.runPatchFile', (uri) => runPatchFile(s, uri as vscode.Uri | undefined)),
    reg('patchlens.newPatchFile', () => newPatchFile()),
    reg('patchlens.openExample', (file) => openExample(s, file as string | undefined)),
    reg('patchlens.showRuns', () => vscode.commands.executeCommand('patchlens.runs.focus')),
    reg('patchlens.exportHeatmap', () => exportHeatmap(s)),
    reg('patchlens.selectModel', () => selectModel(s)),
    reg('patchlens.selectDevice', () => selectDevice()),
    reg('patchlens.cancelRun', (node) => cancelRun(s, node as RunsNode | undefined)),
    reg('patchlens.openRun', (node) => {
      const path = nodePath(node);
      if (path) s.panels.show(path);
    }),
    reg('patchlens.revealSpec', (node) => revealSpec(node)),
    reg('patchlens.deleteRun', (node) => deleteRun(s, node)),
    reg('patchlens.refreshRuns', () => s.refreshRuns()),
    reg('patchlens.engineStatus', () => engineStatus(s)),
  );
}
