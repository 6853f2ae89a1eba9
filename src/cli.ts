import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MEMORY_BUDGET_MIB, DEVICE_SETTINGS, type DeviceSetting, type ProgressParams } from './protocol/engineRpc';
import { runSpec } from './engine/runSpec';
import { ModelCache } from './engine/modelLoader';
import { checkHubEndpoint } from './engine/model/hub';
import { isCancelled } from './common/cancelled';
import { isUserError, printable, UserError } from './common/userError';
import { METHOD_NAMES, type MethodName, type SweepName } from './protocol/spec';
import { claimResultPath, RESULT_SUFFIX, writeResultFile } from './common/resultFile';
import { readShardFile, shardFilesIn } from './common/shardFile';
import { mergeShards } from './common/mergeShards';
import { createNewFile, fileErrorCode, writableFolderFix } from './common/fileWrite';
import { errnoWords } from './common/errorReason';
import { pngSuffix, writeSweepPng } from './engine/render/heatmapPng';

const USAGE = `usage: patchlens <command> [options]

commands:
  run SPEC [options]   run the activation-patching sweeps of a .patch.json spec and write
                       DIR/<name>.result.json (DIR defaults to .patchlens/runs beside the spec)
      --model ID_OR_DIR      hub id (gpt2, distilgpt2, ...), checkpoint folder, or induction-2l
      --out DIR              where to write the result (and PNGs)
      --device D             ${DEVICE_SETTINGS.join('|')} (default auto)
      --png                  also write one heatmap PNG per sweep
      --naive                one full forward per patched index, as TransformerLens (the reference mode)
      --method M             ${METHOD_NAMES.join('|')}: exact patching, or attribution patching's estimates
                             (AtP, AtP*); overrides the spec's "method"
      --memory-budget MIB    working memory for batched patches (default ${DEFAULT_MEMORY_BUDGET_MIB})
      --hub-endpoint URL     Hugging Face hub mirror (default $HF_ENDPOINT or https://huggingface.co)
      --cache DIR            model cache (default $PATCHLENS_CACHE or ~/.cache/patchlens)
      --shard I/N            compute only share I of N (1..N) of the sweeps and write DIR/<name>.shard-I-of-N.json,
                             for patchlens merge (a split run: one share per machine or job)
      --quiet                no progress on stderr
  merge OUT SHARDS...  combine the N shard files of a split run (files, or folders of them) into the result
                       one machine would have written: OUT/<name>.result.json, or OUT itself if it ends in .result.json
      --png                  also write one heatmap PNG per sweep
  help                 print this text`;

function progressPrinter(quiet: boolean): (p: Omit<ProgressParams, 'runId'>) => void {
  let last = '';
  let lastTime = 0;
  return (p) => {
    if (quiet) return;
    const now = Date.now();
    const pct = p.total ? ` ${Math.floor((100 * (p.done ?? 0)) / p.total)}%` : '';
    const line = `${p.phase}: ${p.message}${pct}`;
    // At most a line every half second per phase, so a long sweep shows life without flooding a log.
    if (line === last || (p.phase === last.split(':')[0] && now - lastTime < 500 && p.done !== p.total)) return;
    last = line;
    lastTime = now;
    process.stderr.write(`${printable(line)}\n`);
  };
}

/** The signals that stop a run the way Ctrl-C does, with their numbers (the exit status is 128 + it). */
const STOP_SIGNALS = { SIGINT: 2, SIGHUP: 1, SIGTERM: 15 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * Ctrl-C, a terminal closing (SIGHUP) and a job scheduler's stop (SIGTERM) all cancel the run between
 * batches: the sweeps that finished are written, marked cancelled. A second signal ends the process at once.
 */
function cancelOnSignals(controller: AbortController, quiet: boolean): () => StopSignal | undefined {
  let received: StopSignal | undefined;
  for (const name of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    process.on(name, () => {
      if (received) process.exit(128 + STOP_SIGNALS[name]);
      received = name;
      if (!quiet) process.stderr.write(`${name === 'SIGINT' ? 'cancelling' : `${name}: cancelling`} (the sweeps that finished are kept)...\n`);
      controller.abort();
    });
  }
  return () => received;
}

async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        model: { type: 'string' },
        out: { type: 'string' },
        device: { type: 'string', default: 'auto' },
        png: { type: 'boolean', default: false },
        naive: { type: 'boolean', default: false },
        method: { type: 'string' },
        'memory-budget': { type: 'string' },
        'hub-endpoint': { type: 'string' },
        cache: { type: 'string' },
        shard: { type: 'string' },
        quiet: { type: 'boolean', default: false },
      },
    });
  } catch (e) {
    throw new UserError(`${(e as Error).message}; run 'patchlens help' for the options`);
  }
  const { values: o, positionals } = parsed;
  if (positionals.length !== 1) throw new UserError(`'run' takes one spec file, got ${positionals.length}; usage: patchlens run SPEC [options]`);
  if (!(DEVICE_SETTINGS as readonly string[]).includes(o.device!)) {
    throw new UserError(`unknown device '${o.device}'; use one of ${DEVICE_SETTINGS.join(', ')}`);
  }
  const budget = o['memory-budget'] === undefined ? undefined : Number(o['memory-budget']);
  if (budget !== undefined && !(budget > 0)) throw new UserError(`--memory-budget needs a positive number of MiB, got '${o['memory-budget']}'`);
  if (o['hub-endpoint'] !== undefined) checkHubEndpoint(o['hub-endpoint']);
  // An empty value is no value: `--model ""` (an unset variable in a script) means the spec's model.
  const given = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  const model = given(o.model);
  const out = given(o.out);
  const cache = given(o.cache);
  const method = given(o.method);
  if (method !== undefined && !(METHOD_NAMES as readonly string[]).includes(method)) {
    throw new UserError(`unknown method '${method}'; use one of ${METHOD_NAMES.join(', ')}`);
  }

  const shard = o.shard === undefined ? undefined : parseShard(o.shard);
  if (shard && o.png) throw new UserError('--shard writes a share of each sweep, not a heatmap: leave out --png, and pass it to patchlens merge');
  if (shard && method !== undefined && method !== 'exact')
    throw new UserError(`--shard splits exact patching's sweeps; --method ${method} estimates every index from a few passes and is not split: run it without --shard`);

  const controller = new AbortController();
  const stoppedBy = cancelOnSignals(controller, o.quiet!);
  const models = new ModelCache();
  let printed: string | undefined;
  const exitStatus = () => 128 + STOP_SIGNALS[stoppedBy() ?? 'SIGINT'];
  try {
    const outcome = await runSpec(
      {
        runId: 'cli',
        specFile: positionals[0]!,
        device: o.device as DeviceSetting,
        mode: o.naive ? 'naive' : 'fast',
        png: o.png,
        ...(model !== undefined ? { model } : {}),
        ...(method !== undefined ? { method: method as MethodName } : {}),
        ...(out !== undefined ? { outDir: out } : {}),
        ...(budget !== undefined ? { memoryBudgetMiB: budget } : {}),
        ...(o['hub-endpoint'] !== undefined ? { hubEndpoint: o['hub-endpoint'] } : {}),
        ...(cache !== undefined ? { cacheDir: cache } : {}),
        ...(shard ? { shard } : {}),
      },
      {
        models,
        signal: controller.signal,
        progress: progressPrinter(o.quiet!),
        log: (m) => o.quiet || process.stderr.write(`${printable(m)}\n`),
        // Printed the moment it exists: whatever fails afterwards, the user knows where the result is.
        onResult: (path) => console.log((printed = path)),
      },
    );
    await models.release();
    if (printed !== outcome.resultPath) console.log(outcome.resultPath);
    for (const p of outcome.pngPaths) console.log(p);
    if (outcome.warning) {
      process.stderr.write(`patchlens: ${printable(outcome.warning)}\n`);
      return 1;
    }
    if (outcome.status === 'cancelled') {
      process.stderr.write(`patchlens: ${printable(outcome.message ?? 'cancelled')}\n`);
      return exitStatus();
    }
    return 0;
  } catch (e) {
    if (!isCancelled(e)) throw e;
    process.stderr.write(`patchlens: ${printable(e.message)}\n`);
    return exitStatus();
  }
}

/** More shards than any cluster runs at once: a typo, not a plan. */
const MAX_SHARDS = 100_000;

/** `--shard I/N`: shard I (1-based) of N. */
function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!(index >= 1 && index <= count && count <= MAX_SHARDS)) {
    throw new UserError(
      `--shard takes I/N, share I of N counted from 1 (1/4 ... 4/4, N at most ${MAX_SHARDS}), got '${text}'; a Kubernetes job index counts from 0: pass $((JOB_COMPLETION_INDEX + 1))/N`,
    );
  }
  return { index, count };
}

/** The files a merge argument names: a shard file, or every shard file in a folder. */
function shardPaths(arg: string): string[] {
  let st;
  try {
    st = statSync(arg);
  } catch (e) {
    throw new UserError(`cannot read ${arg} (${errnoWords(fileErrorCode(e) ?? String(e))}); give shard files or folders of them`);
  }
  if (!st.isDirectory()) return [arg];
  const found = shardFilesIn(arg);
  if (found.length === 0) throw new UserError(`the folder ${arg} holds no shard files (NAME.shard-I-of-N.json); give the folder patchlens run --shard wrote to`);
  return found;
}

/** Where the merged result goes: OUT itself when it names a new .result.json file, else a new <name>.result.json in the folder OUT. */
function mergedResultPath(out: string, name: string, companions: string[]): string {
  const isFile = existsSync(out) && !statSync(out).isDirectory();
  if (!out.endsWith(RESULT_SUFFIX) && (isFile || out.endsWith('.json'))) {
    throw new UserError(`OUT must be a folder or a new .result.json file, got ${out}; usage: patchlens merge OUT SHARDS...`);
  }
  try {
    if (!out.endsWith(RESULT_SUFFIX)) return claimResultPath(out, name, companions);
    mkdirSync(dirname(out), { recursive: true });
    createNewFile(out, '');
    return out;
  } catch (e) {
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    if (code === 'EEXIST') throw new UserError(`${out} already exists; give a new file name, or a folder for the merged result`);
    throw new UserError(`cannot write the merged result to ${out} (${errnoWords(code)}); ${writableFolderFix(code, 'OUT')}`);
  }
}

async function merge(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { png: { type: 'boolean', default: false } } });
  } catch (e) {
    throw new UserError(`${(e as Error).message}; run 'patchlens help' for the options`);
  }
  const { values: o, positionals } = parsed;
  if (positionals.length < 2)
    throw new UserError(`'merge' takes where to write the result and the shards, got ${positionals.length} argument(s); usage: patchlens merge OUT SHARDS...`);
  const [out, ...given] = positionals as [string, ...string[]];
  const inputs = given.flatMap(shardPaths).map((path) => ({ path, shard: readShardFile(path) }));
  const result = mergeShards(inputs);
  const sweeps = Object.keys(result.sweeps) as SweepName[];
  const path = mergedResultPath(out, result.name, o.png ? sweeps.map(pngSuffix) : []);
  try {
    writeResultFile(path, result);
  } catch (e) {
    rmSync(path, { force: true });
    const code = fileErrorCode(e);
    if (code === undefined) throw e;
    throw new UserError(`cannot write the merged result to ${path} (${errnoWords(code)}); ${writableFolderFix(code, 'OUT')}`);
  }
  console.log(path);
  for (const sweep of o.png ? sweeps : []) {
    try {
      console.log(await writeSweepPng(result, sweep, path));
    } catch (e) {
      const code = fileErrorCode(e);
      if (code === undefined) throw e;
      throw new UserError(`cannot write the heatmap PNG of ${sweep} beside ${path} (${errnoWords(code)}); the merged result itself is written; ${writableFolderFix(code, 'OUT')}`);
    }
  }
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return 0;
  }
  if (command === 'run') return run(rest);
  if (command === 'merge') return merge(rest);
  console.error(`patchlens: unknown command '${printable(command)}'; run 'patchlens help' for the list`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isUserError(e)) {
      console.error(`patchlens: ${e.message}`);
      process.exit(1);
    }
    // The stack keeps its lines; whatever it quotes is made printable.
    const detail = e instanceof Error ? (e.stack ?? e.message) : String(e);
    console.error(`patchlens: internal error (please report it): ${detail.split('\n').map(printable).join('\n')}`);
    process.exit(70);
  },
);
