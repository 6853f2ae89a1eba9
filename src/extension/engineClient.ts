/**
 * The engine child process seen from the extension host: spawn on first use, JSON-RPC over its stdio,
 * and a crash (exit or signal) turned into an error for whatever was in flight. The next call starts a
 * fresh engine. Plain Node, so tests drive it without VS Code.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createMessageConnection, type MessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import {
  CancelNotification,
  CANCELLED_CODE,
  type EngineStatus,
  LogNotification,
  type ModelFamily,
  ModelFamiliesRequest,
  ModelLoadedNotification,
  type ProgressParams,
  ProgressNotification,
  type RunOutcome,
  type RunParams,
  RunRequest,
  StatusRequest,
  type TokenizeParams,
  type TokenizeResult,
  TokenizeRequest,
  USER_ERROR_CODE,
} from '../protocol/engineRpc';
import type { ModelInfo } from '../protocol/result';

/** The engine process ended while a request was in flight. */
export class EngineCrashedError extends Error {
  override readonly name = 'EngineCrashedError';
  constructor(
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(`the engine process ${signal ? `was killed (${signal})` : `exited with code ${exitCode}`}`);
  }
}

/** An error the user can fix, with the engine's one-line message (and where in the spec, when known). */
export class EngineUserError extends Error {
  override readonly name = 'EngineUserError';
  constructor(
    message: string,
    readonly location?: { file: string; offset: number; end: number },
  ) {
    super(message);
  }
}

/** A run cancelled before it produced a result (during the download or model load). */
export class EngineCancelledError extends Error {
  override readonly name = 'EngineCancelledError';
}

export interface EngineClientOptions {
  /** dist/engine/worker.js */
  readonly workerPath: string;
  /** Default process.execPath: in VS Code that is the Electron binary, run as Node (ELECTRON_RUN_AS_NODE). */
  readonly nodePath?: string;
  readonly execArgv?: string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Engine logs and stderr, line by line. */
  readonly log: (line: string) => void;
  /** The process ended without being asked to (not after dispose). */
  readonly onUnexpectedExit?: (e: EngineCrashedError) => void;
  /** Started or stopped: for the engine status shown in the runs view. */
  readonly onStateChange?: () => void;
}

/**
 * Node's inspector flag for the engine process when PATCHLENS_ENGINE_INSPECT names a port (or
 * host:port), so that a debugger can attach to the engine (.vscode/launch.json, "Attach to the
 * engine"); undefined when the value is neither.
 */
export function engineInspectArgv(value: string): string[] | undefined {
  const v = value.trim();
  if (/^\d{1,5}$/.test(v)) return [`--inspect=127.0.0.1:${v}`];
  if (/^[\w.-]+:\d{1,5}$/.test(v)) return [`--inspect=${v}`];
  return undefined;
}

interface Engine {
  readonly proc: ChildProcess;
  readonly connection: MessageConnection;
  /** Rejects when the process ends (never resolves). */
  readonly exited: Promise<never>;
  stopping: boolean;
}

function isLocation(v: unknown): v is { file: string; offset: number; end: number } {
  const o = v as { file?: unknown; offset?: unknown; end?: unknown } | undefined;
  return typeof o === 'object' && o !== null && typeof o.file === 'string' && typeof o.offset === 'number' && typeof o.end === 'number';
}

/** The client-side error for a failed request. */
export function fromResponseError(e: unknown): unknown {
  if (!(e instanceof ResponseError)) return e;
  if (e.code === USER_ERROR_CODE) {
    const data = e.data as { location?: unknown } | undefined;
    return new EngineUserError(e.message, isLocation(data?.location) ? data.location : undefined);
  }
  if (e.code === CANCELLED_CODE) return new EngineCancelledError(e.message);
  return new Error(e.message);
}

export class EngineClient {
  private engine: Engine | undefined;
  private readonly progressListeners = new Map<string, (p: ProgressParams) => void>();
  private readonly modelListeners = new Map<string, (m: ModelInfo) => void>();
  private disposed = false;

  constructor(private readonly opts: EngineClientOptions) {}

  /** The engine's process id, when one is running. */
  get pid(): number | undefined {
    return this.engine?.proc.pid;
  }

  private start(): Engine {
    if (this.disposed) throw new Error('the PatchLens engine client was shut down');
    if (this.engine) return this.engine;
    const o = this.opts;
    const proc = spawn(o.nodePath ?? process.execPath, [...(o.execArgv ?? []), o.workerPath], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...o.env, ELECTRON_RUN_AS_NODE: '1' },
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      windowsHide: true,
    });
    const connection = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
    createInterface({ input: proc.stderr! }).on('line', (l) => o.log(`[engine] ${l}`));
    connection.onNotification(LogNotification, ({ message }) => o.log(message));
    connection.onNotification(ProgressNotification, (p) => this.progressListeners.get(p.runId)?.(p));
    connection.onNotification(ModelLoadedNotification, ({ runId, model }) => this.modelListeners.get(runId)?.(model));
    // Writes to a dead engine's stdin fail asynchronously; the exit handler reports the crash.
    proc.stdin!.on('error', () => {});
    connection.onError(([e]) => o.log(`engine connection: ${e.message}`));

    let fail!: (e: EngineCrashedError) => void;
    const exited = new Promise<never>((_, reject) => (fail = reject));
    exited.catch(() => {});
    const engine: Engine = { proc, connection, exited, stopping: false };
    let ended = false;
    // A failed spawn may report both 'error' and 'exit': the end is handled once.
    const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      if (this.engine === engine) this.engine = undefined;
      const err = new EngineCrashedError(code, signal);
      fail(err);
      connection.dispose();
      o.log(`engine process ${proc.pid} ended (${signal ?? `code ${code}`})`);
      if (!engine.stopping) o.onUnexpectedExit?.(err);
      o.onStateChange?.();
    };
    proc.once('exit', onEnd);
    proc.once('error', (e) => {
      o.log(`cannot start the engine (${o.nodePath ?? process.execPath} ${o.workerPath}): ${e.message}`);
      onEnd(null, null);
    });
    connection.listen();
    this.engine = engine;
    o.log(`engine process ${proc.pid} started`);
    o.onStateChange?.();
    return engine;
  }

  /** Sends a request, failing with EngineCrashedError if the process ends before the answer. */
  private async call<T>(send: (c: MessageConnection) => Promise<T>): Promise<T> {
    const engine = this.start();
    try {
      return await Promise.race([send(engine.connection), engine.exited]);
    } catch (e) {
      throw fromResponseError(e);
    }
  }

  /** Runs a spec; `onModel` hears the model once the engine has loaded it (for the record of a run the engine dies in). */
  async run(params: RunParams, onProgress?: (p: ProgressParams) => void, onModel?: (m: ModelInfo) => void): Promise<RunOutcome> {
    if (onProgress) this.progressListeners.set(params.runId, onProgress);
    if (onModel) this.modelListeners.set(params.runId, onModel);
    try {
      return await this.call((c) => c.sendRequest(RunRequest, params));
    } finally {
      this.progressListeners.delete(params.runId);
      this.modelListeners.delete(params.runId);
    }
  }

  cancel(runId: string): void {
    void this.engine?.connection.sendNotification(CancelNotification, { runId }).catch(() => {});
  }

  tokenize(params: TokenizeParams): Promise<TokenizeResult> {
    return this.call((c) => c.sendRequest(TokenizeRequest, params));
  }

  /** The model families the engine reads, with their example hub ids (starts the engine if needed). */
  modelFamilies(): Promise<ModelFamily[]> {
    return this.call((c) => c.sendRequest(ModelFamiliesRequest, undefined));
  }

  /** The engine's status, or undefined when no engine is running (asking must not start one). */
  async status(): Promise<EngineStatus | undefined> {
    if (!this.engine) return undefined;
    return this.call((c) => c.sendRequest(StatusRequest, undefined));
  }

  /** Stops the engine: closes its stdin (it releases its model and exits), then kills it if it lingers. */
  async stop(timeoutMs = 3000): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    engine.stopping = true;
    this.engine = undefined;
    const ended = engine.exited.catch(() => {});
    engine.proc.stdin?.end();
    const timer = setTimeout(() => engine.proc.kill('SIGKILL'), timeoutMs);
    await ended;
    clearTimeout(timer);
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.stop();
  }
}
