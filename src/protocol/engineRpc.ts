import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type { ModelInfo, RunStatus } from './result';
import type { MethodName, PatchSpec, SourceText } from './spec';

/** The engine's JSON-RPC surface, spoken over the engine child process's stdio. */

export const DEVICE_SETTINGS = ['auto', 'cpu', 'webgpu', 'cuda', 'dml', 'coreml'] as const;
export type DeviceSetting = (typeof DEVICE_SETTINGS)[number];

export const PATCHING_MODES = ['fast', 'naive'] as const;
export type PatchingMode = (typeof PATCHING_MODES)[number];

/** Working memory for batches of patched runs when no budget is given, MiB. */
export const DEFAULT_MEMORY_BUDGET_MIB = 1024;

/** Where to find models and how to run them; the extension fills it from its settings. */
export interface EngineSettings {
  readonly device?: DeviceSetting;
  readonly mode?: PatchingMode;
  /** Overrides the spec's method (exact patching or attribution estimates). */
  readonly method?: MethodName;
  /** Working memory for batches of patched runs, MiB. */
  readonly memoryBudgetMiB?: number;
  readonly hubEndpoint?: string;
  /** Folder for downloaded and built-in models. */
  readonly cacheDir?: string;
}

/** Prompts picked from an editor selection, with where each came from in its document. */
export interface SelectionSource {
  readonly spec: PatchSpec;
  /** The document's path (or URI string) the prompts came from. */
  readonly document: string;
  readonly sources: { clean?: SourceText; corrupted?: SourceText }[];
}

export interface RunParams extends EngineSettings {
  /** Identifies the run in progress notifications and in cancel. */
  readonly runId: string;
  /** A .patch.json file; its folder anchors relative model paths and the default output folder. */
  readonly specFile: string;
  /** The spec's current text when it differs from the file on disk (an unsaved editor). */
  readonly specText?: string;
  /** Instead of a spec text: prompts from a selection (specFile then only names the run and its folder). */
  readonly selection?: SelectionSource;
  /** Overrides the spec's model. */
  readonly model?: string;
  /** Overrides the spec's method (exact patching or attribution estimates). */
  readonly method?: MethodName;
  /** Overrides the spec's verify_top (an attribution run's exact checks of its estimates). */
  readonly verifyTop?: number;
  /**
   * Default: `.patchlens/runs` beside the spec; the current directory's `.patchlens/runs` when the spec
   * is not in a folder of files (a pipe, /dev/stdin) or that folder cannot be written.
   */
  readonly outDir?: string;
  /** Also write one PNG per sweep beside the result. */
  readonly png?: boolean;
  /**
   * Compute only this share (1-based `index` of `count`) of the sweeps and write it as a shard file for
   * `patchlens merge` (the CLI's `--shard i/n`).
   */
  readonly shard?: { readonly index: number; readonly count: number };
}

export interface RunOutcome {
  readonly runId: string;
  readonly resultPath: string;
  readonly status: RunStatus;
  readonly message?: string;
  readonly pngPaths: string[];
  /**
   * Set when the run's files could not all be written where asked (a full disk, a folder that became
   * read-only): one line saying what was not written and where the result went instead.
   */
  readonly warning?: string;
}

export type ProgressPhase = 'download' | 'load' | 'baseline' | 'sweep' | 'write';

export interface ProgressParams {
  readonly runId: string;
  readonly phase: ProgressPhase;
  readonly message: string;
  /** Units done and in all, when known (bytes for downloads, patched indices for sweeps). */
  readonly done?: number;
  readonly total?: number;
}

/** Sent once a run's model is loaded, so that a run whose engine dies later still records its model. */
export interface ModelLoadedParams {
  readonly runId: string;
  readonly model: ModelInfo;
}

export interface TokenizeParams extends EngineSettings {
  readonly model: string;
  readonly baseDir?: string;
  readonly texts: string[];
}

export interface TokenizeResult {
  readonly tokens: { ids: number[]; strings: string[] }[];
}

/** A model family the engine reads (its architecture registry), with hub ids Select Model offers. */
export interface ModelFamily {
  readonly id: string;
  readonly label: string;
  readonly examples: readonly { readonly id: string; readonly description: string }[];
}

export interface EngineStatus {
  readonly model?: { readonly id: string; readonly provider: string };
  readonly running: string[];
}

/** Error codes of failed requests: a user error carries a message meant for the user as is. */
export const USER_ERROR_CODE = -32001;
export const CANCELLED_CODE = -32800;

export const RunRequest = new RequestType<RunParams, RunOutcome, void>('patchlens/run');
export const TokenizeRequest = new RequestType<TokenizeParams, TokenizeResult, void>('patchlens/tokenize');
export const StatusRequest = new RequestType<void, EngineStatus, void>('patchlens/status');
export const ModelFamiliesRequest = new RequestType<void, ModelFamily[], void>('patchlens/modelFamilies');
export const CancelNotification = new NotificationType<{ runId: string }>('patchlens/cancel');
export const ProgressNotification = new NotificationType<ProgressParams>('patchlens/progress');
export const ModelLoadedNotification = new NotificationType<ModelLoadedParams>('patchlens/modelLoaded');
export const LogNotification = new NotificationType<{ message: string }>('patchlens/log');
