import { parseArgs } from 'node:util';
import { DEFAULT_MEMORY_BUDGET_MIB, DEVICE_SETTINGS, type DeviceSetting, type ProgressParams } from './protocol/engineRpc';
import { runSpec } from './engine/runSpec';
import { ModelCache } from './engine/modelLoader';
import { isUserError, UserError } from './common/userError';

const USAGE = `usage: patchlens <command> [options]

commands:
  run SPEC [options]   run the activation-patching sweeps of a .patch.json spec and write
                       DIR/<name>.result.json (DIR defaults to .patchlens/runs beside the spec)
      --model ID_OR_DIR      hub id (gpt2, distilgpt2, ...), checkpoint folder, or induction-2l
      --out DIR              where to write the result (and PNGs)
      --device D             ${DEVICE_SETTINGS.join('|')} (default auto)
      --png                  also write one heatmap PNG per sweep
      --naive                one full forward per patched index, as TransformerLens (the reference mode)
      --memory-budget MIB    working memory for batched patches (default ${DEFAULT_MEMORY_BUDGET_MIB})
      --hub-endpoint URL     Hugging Face hub mirror (default $HF_ENDPOINT or https://huggingface.co)
      --cache DIR            model cache (default $PATCHLENS_CACHE or ~/.cache/patchlens)
      --quiet                no progress on stderr
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
    process.stderr.write(`${line}\n`);
  };
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
        'memory-budget': { type: 'string' },
        'hub-endpoint': { type: 'string' },
        cache: { type: 'string' },
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

  const controller = new AbortController();
  process.once('SIGINT', () => {
    process.stderr.write('cancelling (the sweeps that finished are kept)...\n');
    controller.abort();
  });
  const models = new ModelCache();
  const outcome = await runSpec(
    {
      runId: 'cli',
      specFile: positionals[0]!,
      device: o.device as DeviceSetting,
      mode: o.naive ? 'naive' : 'fast',
      png: o.png,
      ...(o.model !== undefined ? { model: o.model } : {}),
      ...(o.out !== undefined ? { outDir: o.out } : {}),
      ...(budget !== undefined ? { memoryBudgetMiB: budget } : {}),
      ...(o['hub-endpoint'] !== undefined ? { hubEndpoint: o['hub-endpoint'] } : {}),
      ...(o.cache !== undefined ? { cacheDir: o.cache } : {}),
    },
    { models, signal: controller.signal, progress: progressPrinter(o.quiet!), log: (m) => o.quiet || process.stderr.write(`${m}\n`) },
  );
  await models.release();
  console.log(outcome.resultPath);
  for (const p of outcome.pngPaths) console.log(p);
  if (outcome.status === 'cancelled') {
    process.stderr.write(`patchlens: ${outcome.message}\n`);
    return 130;
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
  console.error(`patchlens: unknown command '${command}'; run 'patchlens help' for the list`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isUserError(e)) {
      console.error(`patchlens: ${e.message}`);
      process.exit(1);
    }
    console.error('patchlens: internal error (please report it):', e);
    process.exit(70);
  },
);
