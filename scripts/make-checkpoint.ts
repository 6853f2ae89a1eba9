// Writes a random-weight GPT-2 checkpoint in Hugging Face format, for tests, demos and benchmarks:
//   npx tsx scripts/make-checkpoint.ts OUT_DIR --layers 2 --heads 4 --d-model 32 --vocab 1000 --ctx 64 --seed 1 [--d-mlp N] [--scale S] [--tokenizer]
import { writeRandomGpt2Checkpoint } from '../test/helpers/checkpoint';

const USAGE =
  'usage: npx tsx scripts/make-checkpoint.ts OUT_DIR [--layers N] [--heads N] [--d-model N] [--d-mlp N] [--vocab N] [--ctx N] [--seed N] [--scale S] [--tokenizer]';

function main(argv: string[]): number {
  const opts = { layers: 2, heads: 4, 'd-model': 32, 'd-mlp': NaN, vocab: 1000, ctx: 64, seed: 1, scale: 0.2 };
  let out: string | undefined;
  let tokenizer = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--tokenizer') tokenizer = true;
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith('--')) {
      const key = a.slice(2);
      if (!(key in opts)) {
        console.error(`unknown option ${a}\n${USAGE}`);
        return 2;
      }
      const v = Number(argv[++i]);
      const isInt = key !== 'scale';
      if (!Number.isFinite(v) || (isInt && (!Number.isInteger(v) || v < (key === 'seed' ? 0 : 1))) || (!isInt && v <= 0)) {
        console.error(`${a} needs a ${isInt ? 'positive integer' : 'positive number'}, got '${argv[i] ?? ''}'`);
        return 2;
      }
      opts[key as keyof typeof opts] = v;
    } else if (out === undefined) out = a;
    else {
      console.error(`unexpected argument '${a}'\n${USAGE}`);
      return 2;
    }
  }
  if (out === undefined) {
    console.error(USAGE);
    return 2;
  }
  if (opts['d-model'] % opts.heads !== 0) {
    console.error(`--d-model ${opts['d-model']} must be divisible by --heads ${opts.heads}`);
    return 2;
  }
  if (tokenizer && opts.vocab !== 50257) {
    console.error(`--tokenizer writes GPT-2's tokenizer, which needs --vocab 50257 (got ${opts.vocab})`);
    return 2;
  }
  const cfg = writeRandomGpt2Checkpoint(out, {
    nLayers: opts.layers,
    nHeads: opts.heads,
    dModel: opts['d-model'],
    dMlp: Number.isNaN(opts['d-mlp']) ? undefined : opts['d-mlp'],
    dVocab: opts.vocab,
    nCtx: opts.ctx,
    seed: opts.seed,
    scale: opts.scale,
    withTokenizer: tokenizer,
  });
  console.log(`wrote ${out}: ${cfg.nLayers} layers, ${cfg.nHeads} heads, d_model ${cfg.dModel}, d_mlp ${cfg.dMlp}, vocab ${cfg.dVocab}, n_ctx ${cfg.nCtx}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
