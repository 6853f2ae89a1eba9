import { totalmem } from 'node:os';
import type { ModelShape } from '../../protocol/result';
import { UserError } from '../../common/userError';

/** Everything the engine needs to know of a model's architecture, in TransformerLens's names. */
export interface ModelConfig extends ModelShape {
  readonly architecture: 'gpt2';
  readonly layerNormEps: number;
  readonly activation: 'gelu_new' | 'gelu' | 'relu';
  readonly bosTokenId: number;
  readonly eosTokenId: number;
}

// Bounds far above any real GPT-2-family model; they exist so a corrupt or hostile config.json is
// rejected with a message instead of an allocation that takes the machine down.
const MAX_D_MODEL = 65536;
const MAX_LAYERS = 512;
const MAX_HEADS = 65536;
const MAX_VOCAB = 10_000_000;
const MAX_CTX = 1 << 20;
const MAX_D_MLP = 1 << 20;
const MAX_WEIGHT_BYTES = 64 * 2 ** 30;

const GPT2_ARCHITECTURES = new Set(['GPT2LMHeadModel', 'GPT2Model']);

/** Bytes as a person reads them: 1.5 GiB, 320.0 MiB, 97.7 KiB. */
export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}

/**
 * The most float32 weight bytes a model may have here: $PATCHLENS_MAX_MODEL_BYTES when set, else the
 * machine's total memory (free memory is no guide: the page cache counts as used). `what` names the
 * limit for messages.
 */
export function modelMemoryLimit(): { bytes: number; what: string } {
  const env = process.env.PATCHLENS_MAX_MODEL_BYTES;
  if (env !== undefined && env !== '') {
    const bytes = Number(env);
    if (!(Number.isFinite(bytes) && bytes > 0)) {
      throw new UserError(`PATCHLENS_MAX_MODEL_BYTES is '${env}'; set it to a positive number of bytes, or unset it to use the machine's memory`);
    }
    return { bytes, what: `the limit PATCHLENS_MAX_MODEL_BYTES=${env} (${formatBytes(bytes)})` };
  }
  const bytes = totalmem();
  return { bytes, what: `this machine's memory (${formatBytes(bytes)})` };
}

/** Number of float parameters in a GPT-2-shaped model (tied unembedding counted once). */
export function modelParamCount(cfg: ModelConfig): number {
  const d = cfg.dModel;
  const perBlock =
    2 * d + // ln_1
    d * 3 * d + 3 * d + // c_attn
    d * d + d + // attn c_proj
    2 * d + // ln_2
    d * cfg.dMlp + cfg.dMlp + // c_fc
    cfg.dMlp * d + d; // mlp c_proj
  return cfg.dVocab * d + cfg.nCtx * d + cfg.nLayers * perBlock + 2 * d;
}

/** Maps a Hugging Face GPT-2 `config.json` (already parsed) to a ModelConfig, validating every field. */
export function parseGpt2Config(json: unknown, file: string): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new UserError(`${file} is not a JSON object; a model config.json must be an object like Hugging Face's`);
  }
  const j = json as Record<string, unknown>;
  const archs = Array.isArray(j.architectures) ? j.architectures.filter((a): a is string => typeof a === 'string') : [];
  if (j.model_type !== 'gpt2' && !archs.some((a) => GPT2_ARCHITECTURES.has(a))) {
    const name = typeof j.model_type === 'string' ? j.model_type : (archs[0] ?? String(j.model_type ?? 'none'));
    throw new UserError(`unknown architecture '${name}' in ${file}; PatchLens supports GPT-2-family checkpoints (model_type gpt2)`);
  }

  const int = (key: string, max: number, fallbackKey?: string): number => {
    let v = j[key];
    let used = key;
    if ((v === undefined || v === null) && fallbackKey !== undefined) {
      v = j[fallbackKey];
      used = fallbackKey;
    }
    if (v === undefined || v === null) throw new UserError(`${file} has no '${key}'; a GPT-2 config.json needs it (a positive integer)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new UserError(`'${used}' in ${file} is ${JSON.stringify(v)}; it must be a positive integer`);
    }
    if (v > max) throw new UserError(`'${used}' in ${file} is ${v}, above the limit ${max}; the config is corrupt or not a GPT-2 model`);
    return v;
  };

  const dModel = int('n_embd', MAX_D_MODEL);
  const nHeads = int('n_head', MAX_HEADS);
  const nLayers = int('n_layer', MAX_LAYERS);
  const dVocab = int('vocab_size', MAX_VOCAB);
  const nCtx = int('n_positions', MAX_CTX, 'n_ctx');
  const dMlp = j.n_inner === undefined || j.n_inner === null ? 4 * dModel : int('n_inner', MAX_D_MLP);
  if (dModel % nHeads !== 0) {
    throw new UserError(`'n_embd' (${dModel}) in ${file} is not divisible by 'n_head' (${nHeads}); fix the config`);
  }

  let layerNormEps = 1e-5;
  if (j.layer_norm_epsilon !== undefined && j.layer_norm_epsilon !== null) {
    const e = j.layer_norm_epsilon;
    if (typeof e !== 'number' || !Number.isFinite(e) || e < 0 || e >= 1) {
      throw new UserError(`'layer_norm_epsilon' in ${file} is ${JSON.stringify(e)}; it must be a small non-negative number like 1e-5`);
    }
    layerNormEps = e;
  }

  const act = j.activation_function ?? 'gelu_new';
  let activation: ModelConfig['activation'];
  if (act === 'gelu_new' || act === 'gelu_pytorch_tanh') activation = 'gelu_new';
  else if (act === 'gelu' || act === 'relu') activation = act;
  else {
    throw new UserError(`'activation_function' in ${file} is ${JSON.stringify(act)}; PatchLens supports gelu_new, gelu_pytorch_tanh, gelu and relu`);
  }

  const tokenId = (key: string): number => {
    const v = j[key];
    // GPT-2 checkpoints put <|endoftext|> last in the vocabulary; that is the default HF itself uses.
    if (v === undefined || v === null) return dVocab - 1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= dVocab) {
      throw new UserError(`'${key}' in ${file} is ${JSON.stringify(v)}; it must be a token id in [0, ${dVocab})`);
    }
    return v;
  };

  const cfg: ModelConfig = {
    architecture: 'gpt2',
    nLayers,
    nHeads,
    dModel,
    dHead: dModel / nHeads,
    dMlp,
    dVocab,
    nCtx,
    layerNormEps,
    activation,
    bosTokenId: tokenId('bos_token_id'),
    eosTokenId: tokenId('eos_token_id'),
  };
  const bytes = modelParamCount(cfg) * 4;
  if (bytes > MAX_WEIGHT_BYTES) {
    throw new UserError(
      `${file} describes a model of ${(bytes / 2 ** 30).toFixed(1)} GiB of float32 weights (n_embd ${dModel}, n_layer ${nLayers}, vocab_size ${dVocab}), above PatchLens's 64 GiB limit; use a smaller model`,
    );
  }
  return cfg;
}
