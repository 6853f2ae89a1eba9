/**
 * A run from request to result file: queued behind the window's other runs, sent to the engine with
 * progress and cancel, and recorded as failed when the engine dies under it. The UI is passed in, so
 * this runs in unit tests with a fake one. Plain Node.
 */
import { basename } from 'node:path';
import type { EngineStatus, ProgressParams, RunOutcome, RunParams } from '../protocol/engineRpc';
import type { ModelInfo } from '../protocol/result';
import type { PatchSpec } from '../protocol/spec';
import { EngineCancelledError, EngineCrashedError, EngineUserError } from './engineClient';
import { findResultSince, writeFailedResult } from './runHistory';
import { type QueueEntry, RunQueue } from './runQueue';
import { errorDetail, errorMessage } from '../common/errorReason';

/** What the run manager needs of the engine (EngineClient, or a fake in tests). */
export interface EngineLike {
  run(params: RunParams, onProgress?: (p: ProgressParams) => void, onModel?: (m: ModelInfo) => void): Promise<RunOutcome>;
  cancel(runId: string): void;
  status(): Promise<EngineStatus | undefined>;
  readonly pid: number | undefined;
}

export interface RunUi {
  /** Shows progress (a notification with a Cancel button in VS Code) while `task` runs. */
  withProgress<T>(title: string, onCancel: () => void, task: (report: (p: ProgressParams) => void) => Promise<T>): Promise<T>;
  info(message: string): void;
  /** `location` (document offsets) when the error points into a spec, for a diagnostic. */
  error(message: string, location?: { file: string; offset: number; end: number }): void;
  /** A run wrote a result (done, cancelled with some sweeps, or a failure record). */
  resultWritten(path: string, outcome: RunOutcome | undefined): void;
}

export interface RunSubmission {
  /** Shown in the queue and progress. */
  readonly label: string;
  readonly params: Omit<RunParams, 'runId'>;
  /** For the failure record if the engine dies: the spec as sent, where results go, its name. */
  readonly spec: PatchSpec;
  readonly name: string;
  readonly outDir: string;
  readonly source?: string;
  readonly modelId: string;
}

export type RunEnd =
  | { readonly kind: 'finished'; readonly outcome: RunOutcome }
  | { readonly kind: 'crashed'; readonly resultPath: string | undefined; readonly error: EngineCrashedError }
  | { readonly kind: 'userError'; readonly message: string }
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'error'; readonly message: string };

export class RunDispatcher {
  readonly queue = new RunQueue<RunEnd>('run');

  constructor(
    private readonly engine: EngineLike,
    private readonly ui: RunUi,
    private readonly log: (line: string) => void,
  ) {}

  /** Queues a run; resolves when it ended (undefined: cancelled while queued). */
  submit(input: RunSubmission): { id: string; result: Promise<RunEnd | undefined> } {
    const ahead = this.queue.entries().length;
    const queued = this.queue.enqueue({
      label: input.label,
      run: (id) => this.execute(id, input),
      cancel: (id) => this.engine.cancel(id),
    });
    if (ahead > 0) this.ui.info(`PatchLens: ${input.label} is queued behind ${ahead} run${ahead === 1 ? '' : 's'}; it starts when ${ahead === 1 ? 'that one ends' : 'they end'}.`);
    return queued;
  }

  cancel(id?: string): boolean {
    return this.queue.cancel(id) !== undefined;
  }

  entries(): QueueEntry[] {
    return this.queue.entries();
  }

  private async execute(runId: string, input: RunSubmission): Promise<RunEnd> {
    const startedAt = Date.now();
    const params: RunParams = { ...input.params, runId };
    this.log(`run ${runId}: ${input.label}`);
    let end: RunEnd;
    let model: ModelInfo | undefined;
    try {
      const outcome = await this.ui.withProgress(
        `PatchLens: ${input.label}`,
        () => this.queue.cancel(runId),
        (report) => this.engine.run(params, report, (m) => (model = m)),
      );
      end = { kind: 'finished', outcome };
    } catch (e) {
      if (e instanceof EngineCrashedError) {
        let resultPath = findResultSince(input.outDir, input.name, startedAt);
        if (!resultPath) {
          try {
            resultPath = writeFailedResult({
              outDir: input.outDir,
              name: input.name,
              spec: input.spec,
              ...(input.source !== undefined ? { source: input.source } : {}),
              modelId: input.modelId,
              ...(model !== undefined ? { model } : {}),
              message: `${e.message} during the run; the engine restarts with the next run`,
              startedAt,
            });
          } catch (w) {
            this.log(`cannot write the failure record of ${runId}: ${errorMessage(w)}`);
          }
        }
        end = { kind: 'crashed', resultPath, error: e };
      } else if (e instanceof EngineUserError) {
        this.ui.error(`PatchLens: ${e.message}`, e.location);
        return { kind: 'userError', message: e.message };
      } else if (e instanceof EngineCancelledError) {
        this.ui.info(`PatchLens: ${input.label} was cancelled before it started computing; nothing was written.`);
        return { kind: 'cancelled' };
      } else {
        const message = errorMessage(e);
        this.log(`run ${runId} failed: ${errorDetail(e)}`);
        this.ui.error(`PatchLens: the run failed (${message}); see the PatchLens output for details.`);
        return { kind: 'error', message };
      }
    }
    if (end.kind === 'crashed') {
      this.ui.error(
        `PatchLens: the engine stopped during ${input.label} (${end.error.signal ?? `exit code ${end.error.exitCode}`}). ` +
          `The run is recorded as failed${end.resultPath ? ` in ${basename(end.resultPath)}` : ''}; the engine restarts with the next run.`,
      );
      if (end.resultPath) this.ui.resultWritten(end.resultPath, undefined);
      return end;
    }
    const o = end.outcome;
    if (o.status === 'cancelled') this.ui.info(`PatchLens: ${input.label} cancelled; ${o.message ?? 'partial results kept'}.`);
    if (o.warning) this.ui.error(`PatchLens: ${o.warning}`);
    this.ui.resultWritten(o.resultPath, o);
    return end;
  }
}
