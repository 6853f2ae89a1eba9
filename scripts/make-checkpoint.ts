// Writes a random-weight checkpoint in a family's exact hub layout, for tests, demos and benchmarks:
//   npx tsx scripts/make-checkpoint.ts OUT_DIR [--arch gpt2|gpt_neox|transformer_lens|llama|mistral|qwen2|qwen3|gemma2|gemma3_text|olmo2] --layers 2 --heads 4 --d-model 32 --vocab 1000 --ctx 64 --seed 1 ...
import { parseArgs } from 'node:util';
import { writeRandomGpt2Checkpoint } from '../test/helpers/checkpoint';
import { type LlamaArch, writeRandomLlamaCheckpoint } from '../test/helpers/checkpoints/llama';
import { writeRandomNeoxCheckpoint } from '../test/helpers/checkpoints/neox';
import { writeRandomTlCheckpoint } from '../test/helpers/checkpoints/transformerLens';

const USAGE = `usage: npx tsx scripts/make-checkpoint.ts OUT_DIR [--arch A] [--layers N] [--heads N] [--d-model N] [--d-mlp N] [--vocab N] [--ctx N] [--seed N] [--scale S]
  --arch gpt2              Hugging Face GPT-2 (default); --tokenizer adds GPT-2's tokenizer (needs --vocab 50257)
  --arch gpt_neox          Hugging Face GPT-NeoX / Pythia; --rotary-pct P (default 0.25), --sequential, --tied
  --arch transformer_lens  TransformerLens-native (config.json + model_final.pth); --attn-only, --act solu_ln|gelu|gelu_new|relu, --shortformer
  --arch llama|mistral|qwen2|qwen3|gemma2|gemma3_text|olmo2  Hugging Face Llama layout; --kv-heads N, --head-dim N, --tied,
                           --rope-theta X, --dtype F32|F16|BF16, --shards N; llama, qwen3, gemma2, gemma3_text, olmo2: --attention-bias;
                           mistral, qwen2, qwen3, gemma2, gemma3_text: --sliding-window N; gemma2, gemma3_text: --attn-softcap X,
                           --final-softcap X, --query-pre-attn-scalar X; gemma3_text: --sliding-window-pattern N, --rope-local-theta X
                           (Gemma is always tied)`;

const INTS = ['layers', 'heads', 'd-model', 'd-mlp', 'vocab', 'ctx', 'seed', 'kv-heads', 'head-dim', 'shards', 'sliding-window', 'sliding-window-pattern'] as const;
const ARCHS = ['gpt2', 'gpt_neox', 'transformer_lens', 'llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3_text', 'olmo2'] as const;
const LLAMAS: readonly string[] = ['llama', 'mistral', 'qwen2', 'qwen3', 'gemma2', 'gemma3_text', 'olmo2'];
const GEMMAS: readonly string[] = ['gemma2', 'gemma3_text'];
// Positive numbers some families take.
const NUMBERS = ['attn-softcap', 'final-softcap', 'query-pre-attn-scalar', 'rope-local-theta'] as const;
const DTYPES = ['F32', 'F16', 'BF16'] as const;
const ACTS = ['solu_ln', 'gelu', 'gelu_new', 'relu'] as const;
// Which options only some families take.
const ONLY: Record<string, readonly string[]> = {
  tokenizer: ['gpt2'],
  'rotary-pct': ['gpt_neox'],
  sequential: ['gpt_neox'],
  tied: ['gpt_neox', 'llama', 'mistral', 'qwen2', 'qwen3', 'olmo2'],
  'attn-only': ['transformer_lens'],
  act: ['transformer_lens'],
  shortformer: ['transformer_lens'],
  'kv-heads': LLAMAS,
  'head-dim': LLAMAS,
  'rope-theta': LLAMAS,
  dtype: LLAMAS,
  shards: LLAMAS,
  'attention-bias': ['llama', 'qwen3', ...GEMMAS, 'olmo2'],
  'sliding-window': ['mistral', 'qwen2', 'qwen3', ...GEMMAS],
  'attn-softcap': GEMMAS,
  'final-softcap': GEMMAS,
  'query-pre-attn-scalar': GEMMAS,
  'sliding-window-pattern': ['gemma3_text'],
  'rope-local-theta': ['gemma3_text'],
};

function main(argv: string[]): number {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...Object.fromEntries(INTS.map((k) => [k, { type: 'string' }])),
        arch: { type: 'string', default: 'gpt2' },
        scale: { type: 'string' },
        'rotary-pct': { type: 'string' },
        act: { type: 'string' },
        'rope-theta': { type: 'string' },
        ...Object.fromEntries(NUMBERS.map((k) => [k, { type: 'string' }])),
        dtype: { type: 'string' },
        'attention-bias': { type: 'boolean' },
        tokenizer: { type: 'boolean' },
        sequential: { type: 'boolean' },
        tied: { type: 'boolean' },
        'attn-only': { type: 'boolean' },
        shortformer: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  const out = parsed.positionals[0]!;
  const arch = v.arch as string;
  if (!(ARCHS as readonly string[]).includes(arch)) {
    console.error(`--arch ${arch} is not one of ${ARCHS.join(', ')}`);
    return 2;
  }
  for (const [opt, only] of Object.entries(ONLY)) {
    if (v[opt] !== undefined && !only.includes(arch)) {
      console.error(`--${opt} is for --arch ${only.join(', ')}, not ${arch}`);
      return 2;
    }
  }
  const n: Record<string, number> = { layers: 2, heads: 4, 'd-model': 32, vocab: 1000, ctx: 64, seed: 1 };
  for (const k of INTS) {
    if (v[k] === undefined) continue;
    const x = Number(v[k]);
    if (!Number.isInteger(x) || x < (k === 'seed' ? 0 : 1)) {
      console.error(`--${k} needs a positive integer, got '${v[k]}'`);
      return 2;
    }
    n[k] = x;
  }
  const fraction = (k: string, max: number): number | undefined => {
    if (v[k] === undefined) return undefined;
    const x = Number(v[k]);
    if (!(x > 0 && x <= max)) throw new Error(`--${k} needs a number in (0, ${max}], got '${v[k]}'`);
    return x;
  };
  let scale: number | undefined;
  let rotaryPct: number | undefined;
  let ropeTheta: number | undefined;
  const x: Partial<Record<(typeof NUMBERS)[number], number>> = {};
  try {
    scale = fraction('scale', Infinity);
    rotaryPct = fraction('rotary-pct', 1);
    ropeTheta = fraction('rope-theta', Infinity);
    for (const k of NUMBERS) x[k] = fraction(k, Infinity);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (n['d-model']! % n.heads! !== 0 && n['head-dim'] === undefined) {
    console.error(`--d-model ${n['d-model']} must be divisible by --heads ${n.heads}${LLAMAS.includes(arch) ? ', or give --head-dim' : ''}`);
    return 2;
  }
  const shape = { nLayers: n.layers!, nHeads: n.heads!, dModel: n['d-model']!, dMlp: n['d-mlp'], dVocab: n.vocab!, nCtx: n.ctx!, seed: n.seed!, scale };
  if (arch === 'gpt2') {
    if (v.tokenizer && shape.dVocab !== 50257) {
      console.error(`--tokenizer writes GPT-2's tokenizer, which needs --vocab 50257 (got ${shape.dVocab})`);
      return 2;
    }
    writeRandomGpt2Checkpoint(out, { ...shape, withTokenizer: v.tokenizer === true });
  } else if (arch === 'gpt_neox') {
    const dim = Math.floor((shape.dModel / shape.nHeads) * (rotaryPct ?? 0.25));
    if (dim < 2 || dim % 2 !== 0) {
      console.error(`--rotary-pct ${rotaryPct ?? 0.25} gives ${dim} rotary dims of d_head ${shape.dModel / shape.nHeads}; choose one that gives an even number, at least 2`);
      return 2;
    }
    writeRandomNeoxCheckpoint(out, { ...shape, rotaryPct, parallel: !v.sequential, tied: v.tied === true });
  } else if (LLAMAS.includes(arch)) {
    const kv = n['kv-heads'] ?? shape.nHeads;
    const dtype = (v.dtype as string | undefined) ?? 'F32';
    if (shape.nHeads % kv !== 0 || !(DTYPES as readonly string[]).includes(dtype)) {
      console.error(shape.nHeads % kv !== 0 ? `--heads ${shape.nHeads} must be a multiple of --kv-heads ${kv}` : `--dtype ${dtype} is not one of ${DTYPES.join(', ')}`);
      return 2;
    }
    writeRandomLlamaCheckpoint(out, {
      ...shape,
      arch: arch as LlamaArch,
      dMlp: shape.dMlp ?? 4 * shape.dModel,
      nKvHeads: kv,
      dHead: n['head-dim'],
      ...(v.tied ? { tied: true } : {}),
      ropeTheta,
      attentionBias: v['attention-bias'] === true,
      slidingWindow: n['sliding-window'],
      dtype: dtype as (typeof DTYPES)[number],
      shards: n.shards,
      slidingWindowPattern: n['sliding-window-pattern'],
      attnSoftcap: x['attn-softcap'],
      finalSoftcap: x['final-softcap'],
      queryPreAttnScalar: x['query-pre-attn-scalar'],
      ropeLocalTheta: x['rope-local-theta'],
    });
  } else {
    const act = v.act as string | undefined;
    if (act !== undefined && !(ACTS as readonly string[]).includes(act)) {
      console.error(`--act ${act} is not one of ${ACTS.join(', ')}`);
      return 2;
    }
    writeRandomTlCheckpoint(out, { ...shape, attnOnly: v['attn-only'] === true, actFn: act as (typeof ACTS)[number] | undefined, shortformer: v.shortformer === true });
  }
  console.log(`wrote ${out}: a random ${arch} checkpoint, ${shape.nLayers} layers, ${shape.nHeads} heads, d_model ${shape.dModel}, vocab ${shape.dVocab}, n_ctx ${shape.nCtx}`);
  return 0;
}

process.exitCode = main(process.argv.slice(2));
