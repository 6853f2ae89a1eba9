/**
 * The engine child process: JSON-RPC (vscode-jsonrpc) over stdin/stdout, spawned by the extension so
 * that a large model or a native crash never takes the editor down.
 *
 * stdout carries nothing but JSON-RPC frames: one stray line would desynchronise the client's reader,
 * so console output is sent to stderr (which the extension copies into its output channel).
 */
import { resolve } from 'node:path';
import { createMessageConnection, ErrorCodes, type MessageConnection, ResponseError, StreamMessageReader, StreamMessageWriter } from 'vscode-jsonrpc/node';
import {
  CancelNotification,
  CANCELLED_CODE,
  type EngineStatus,
  LogNotification,
  type ModelFamily,
  ModelFamiliesRequest,
  ModelLoadedNotification,
  ProgressNotification,
  RunRequest,
  type TokenizeParams,
  type TokenizeResult,
  TokenizeRequest,
  StatusRequest,
  USER_ERROR_CODE,
} from '../protocol/engineRpc';
import { ARCHITECTURES } from './architectures/registry';
import { runSpec } from './runSpec';
import { readCheckpointConfig } from './model/checkpoint';
import { loadTokenizer } from './model/textTokenizer';
import type { TextTokenizer } from './model/tokenizer';
import { ModelCache, modelDir } from './modelLoader';
import { SpecError } from '../spec/specError';
import { isUserError } from '../common/userError';
import { errorDetail, errorMessage } from '../common/errorReason';

const toStderr = (...args: unknown[]) => process.stderr.write(`${args.map((a) => (typeof a === 'string' ? a : String(a))).join(' ')}\n`);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

/** A failure as the client sees it: a user error's one-line message as is, anything else marked internal. */
export function toResponseError(e: unknown): ResponseError<void> {
  // The location lets the editor underline the offending part of the spec.
  if (e instanceof SpecError && e.location) return new ResponseError(USER_ERROR_CODE, e.message, { location: e.location }) as ResponseError<void>;
  if (isUserError(e)) return new ResponseError(USER_ERROR_CODE, e.message);
  if (e instanceof ResponseError) return e;
  return new ResponseError(ErrorCodes.InternalError, `internal error: ${errorMessage(e)}`, undefined);
}

/** Tokenizers by model folder, so the answer boxes of the selection flow stay quick without loading weights. */
class TokenizerCache {
  private readonly byDir = new Map<string, Promise<TextTokenizer>>();

  get(dir: string): Promise<TextTokenizer> {
    let t = this.byDir.get(dir);
    if (!t) {
      t = loadTokenizer(dir, readCheckpointConfig(dir).config);
      // A failed load (a typo in a folder name) must not stick.
      t.catch(() => this.byDir.delete(dir));
      this.byDir.set(dir, t);
      // Models are few per session; a bound keeps a long session from holding every vocabulary.
      if (this.byDir.size > 4) this.byDir.delete(this.byDir.keys().next().value!);
    }
    return t;
  }
}

export function serveEngine(connection: MessageConnection): { models: ModelCache } {
  const models = new ModelCache();
  const tokenizers = new TokenizerCache();
  const runs = new Map<string, AbortController>();
  const log = (message: string) => void connection.sendNotification(LogNotification, { message });

  connection.onRequest(RunRequest, async (params, token) => {
    if (runs.has(params.runId)) throw new ResponseError(ErrorCodes.InvalidRequest, `run ${params.runId} is already running`);
    const controller = new AbortController();
    runs.set(params.runId, controller);
    const cancel = token.onCancellationRequested(() => controller.abort());
    try {
      log(`run ${params.runId}: ${params.specFile}`);
      return await runSpec(params, {
        models,
        signal: controller.signal,
        log,
        progress: (p) => void connection.sendNotification(ProgressNotification, { runId: params.runId, ...p }),
        modelLoaded: (model) => void connection.sendNotification(ModelLoadedNotification, { runId: params.runId, model }),
      });
    } catch (e) {
      // A cancel during the model download or load ends the request without a result file.
      if (controller.signal.aborted && !isUserError(e)) throw new ResponseError(CANCELLED_CODE, 'cancelled before the run started');
      if (!isUserError(e)) log(`run ${params.runId} failed: ${errorDetail(e)}`);
      throw toResponseError(e);
    } finally {
      cancel.dispose();
      runs.delete(params.runId);
    }
  });

  connection.onNotification(CancelNotification, ({ runId }) => {
    const c = runs.get(runId);
    if (c) {
      log(`run ${runId}: cancel requested`);
      c.abort();
    }
  });

  connection.onRequest(TokenizeRequest, async (params: TokenizeParams): Promise<TokenizeResult> => {
    try {
      const dir = await modelDir({ source: params.model, ...(params.baseDir !== undefined ? { baseDir: params.baseDir } : {}), settings: params });
      const loaded = await models.peek();
      const tok = loaded && resolve(loaded.dir) === resolve(dir) ? loaded.tokenizer : await tokenizers.get(dir);
      return {
        tokens: params.texts.map((text) => {
          const ids = tok.encode(text).ids;
          return { ids, strings: ids.map((id) => tok.tokenString(id)) };
        }),
      };
    } catch (e) {
      throw toResponseError(e);
    }
  });

  connection.onRequest(ModelFamiliesRequest, (): ModelFamily[] => ARCHITECTURES.map((a) => ({ id: a.id, label: a.label, examples: a.examples })));

  connection.onRequest(StatusRequest, async (): Promise<EngineStatus> => {
    const loaded = await models.peek();
    return {
      ...(loaded ? { model: { id: loaded.id, provider: loaded.model.runtime.provider } } : {}),
      running: [...runs.keys()],
    };
  });

  return { models };
}

function main(): void {
  const connection = createMessageConnection(new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));
  const { models } = serveEngine(connection);
  // The extension closes stdin to shut the engine down (and it closes by itself if the editor dies).
  let exiting = false;
  const exit = () => {
    if (exiting) return;
    exiting = true;
    void models.release().finally(() => process.exit(0));
    // A release stuck in native code must not keep an orphan alive.
    setTimeout(() => process.exit(0), 2000).unref();
  };
  connection.onClose(exit);
  process.stdin.on('end', exit);
  process.on('SIGTERM', exit);
  connection.listen();
}

if (require.main === module) main();
