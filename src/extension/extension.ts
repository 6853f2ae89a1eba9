/** Activation: wiring only. Everything with logic lives in the modules it connects. */
import { dirname, isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import { patchTogether, registerCommands, type Services, watchSpecDiagnostics } from './commands';
import { EngineClient, engineInspectArgv } from './engineClient';
import { PanelRegistry } from './panelRegistry';
import { RunHistory } from './runHistory';
import { RunDispatcher } from './runDispatcher';
import { RunsView } from './runsView';
import { parseSettings } from './settings';
import { VscodeRunUi } from './ui';

let engine: EngineClient | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('PatchLens', { log: true });
  const settings = () => parseSettings((key) => vscode.workspace.getConfiguration('patchlens').get(key));
  const diagnostics = vscode.languages.createDiagnosticCollection('patchlens');
  const panels = new PanelRegistry(context.extensionUri, (l) => log.info(l), context.workspaceState);
  const history = new RunHistory();
  const extraFolders = new Set<string>();
  const resultFolders = (): string[] => {
    const s = settings();
    const fromWorkspace = isAbsolute(s.resultsFolder)
      ? [s.resultsFolder]
      : (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => join(f.uri.fsPath, s.resultsFolder));
    return [...new Set([...fromWorkspace, ...extraFolders])];
  };

  // The engine client and the UI call back into the runs view and the dispatcher created after them;
  // none of those calls comes before activation ends.
  const refreshRuns = () => runsView.refresh();
  const inspect = process.env.PATCHLENS_ENGINE_INSPECT;
  const execArgv = inspect ? engineInspectArgv(inspect) : [];
  if (!execArgv) log.warn(`PATCHLENS_ENGINE_INSPECT=${inspect} is not a port or host:port; the engine starts without the inspector`);
  engine = new EngineClient({
    workerPath: context.asAbsolutePath(join('dist', 'engine', 'worker.js')),
    ...(execArgv?.length ? { execArgv } : {}),
    log: (l) => log.info(l),
    onStateChange: refreshRuns,
    onUnexpectedExit: (e) => {
      // During a run the run reports the crash itself (with its failure record).
      if (!runs.queue.running()) void vscode.window.showWarningMessage(`PatchLens: ${e.message}; it restarts with the next run.`);
    },
  });
  const client = engine;
  const ui = new VscodeRunUi(diagnostics, (path, show) => {
    extraFolders.add(dirname(path));
    refreshRuns();
    if (show) panels.show(path, true);
  });
  const runs = new RunDispatcher(client, ui, (l) => log.info(l));
  const runsView = new RunsView({
    history,
    folders: resultFolders,
    queue: () => runs.entries(),
    engine: async () => {
      const status = await Promise.race([client.status().catch(() => undefined), new Promise<undefined>((r) => setTimeout(() => r(undefined), 1500))]);
      return { pid: client.pid, status };
    },
  });
  // Result files appear (a run, another window, a git pull) and vanish: the view follows the folders.
  let watchers: vscode.Disposable[] = [];
  const watch = () => {
    watchers.forEach((w) => w.dispose());
    watchers = resultFolders().map((folder) => {
      const w = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(folder), '*.result.json'));
      return vscode.Disposable.from(w, w.onDidCreate(refreshRuns), w.onDidChange(refreshRuns), w.onDidDelete(refreshRuns));
    });
  };
  watch();

  const services: Services = {
    context,
    log,
    engine: client,
    runs,
    panels,
    ui,
    diagnostics,
    settings,
    noteResultsFolder: (f) => {
      if (!resultFolders().includes(f)) {
        extraFolders.add(f);
        watch();
        refreshRuns();
      }
    },
    refreshRuns,
  };
  panels.onPatchTogether = (result, resultPath, components) => patchTogether(services, result, resultPath, components);

  context.subscriptions.push(
    log,
    diagnostics,
    panels.register(),
    runsView,
    vscode.window.createTreeView('patchlens.runs', { treeDataProvider: runsView }),
    runs.queue.onDidChange(refreshRuns),
    registerCommands(services),
    watchSpecDiagnostics(services),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (e.affectsConfiguration('patchlens.resultsFolder')) {
        watch();
        refreshRuns();
      }
    }),
    vscode.workspace.onDidChangeWorkspaceFolders(() => {
      watch();
      refreshRuns();
    }),
    { dispose: () => watchers.forEach((w) => w.dispose()) },
  );
}

export async function deactivate(): Promise<void> {
  await engine?.dispose();
  engine = undefined;
}
