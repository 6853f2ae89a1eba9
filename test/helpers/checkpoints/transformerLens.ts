import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor32 } from '../../../src/engine/tensor';
import { normalSource } from '../checkpoint';
import { type SavedDtype, torchSave } from './torchSave';

export interface RandomTlOptions {
  nLayers: number;
  nHeads: number;
  dModel: number;
  /** Default d_model / n_heads. */
  dHead?: number;
  dMlp?: number;
  dVocab: number;
  nCtx: number;
  seed: number;
  attnOnly: boolean;
  /** Default 'solu_ln' (what NeelNanda's configs say, even for attention-only models). */
  actFn?: 'solu_ln' | 'gelu' | 'gelu_new' | 'relu';
  shortformer?: boolean;
  tokenizerName?: string;
  dtype?: SavedDtype;
  scale?: number;
}

/**
 * Writes a random-weight TransformerLens-native checkpoint as the NeelNanda/* hub repos hold them: config.json
 * with the keys TransformerLens's convert_neel_model_config reads (plus training keys it ignores) and
 * model_final.pth, torch.save's zip of a state dict with TransformerLens's parameter names and per-head
 * shapes, including the attention-mask buffers TransformerLens modules register.
 */
export function writeRandomTlCheckpoint(dir: string, o: RandomTlOptions): void {
  const D = o.dModel;
  const H = o.nHeads;
  const E = o.dHead ?? D / H;
  const M = o.dMlp ?? 4 * D;
  const act = o.actFn ?? 'solu_ln';
  const scale = o.scale ?? 0.2;
  mkdirSync(dir, { recursive: true });
  const config = {
    n_layers: o.nLayers,
    d_model: D,
    d_mlp: M,
    d_head: E,
    n_heads: H,
    normalization: 'LN',
    n_ctx: o.nCtx,
    d_vocab: o.dVocab,
    tokenizer_name: o.tokenizerName ?? 'NeelNanda/gpt-neox-tokenizer-digits',
    act_fn: act,
    shortformer_pos: o.shortformer ?? false,
    attn_only: o.attnOnly,
    ln_eps: 1e-5,
    lr: 0.001,
    batch_size: 32,
    seed: o.seed,
    use_bfloat16_matmul: true,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');

  const normal = normalSource(o.seed);
  const t = (shape: number[], f: () => number): Tensor32 => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const mat = (...shape: number[]) => t(shape, () => scale * normal());
  const bias = (...shape: number[]) => t(shape, () => 0.1 * normal());
  const gain = (n: number) => t([n], () => 1 + 0.3 * normal());
  const tensors: Record<string, Tensor32> = { 'embed.W_E': mat(o.dVocab, D), 'pos_embed.W_pos': mat(o.nCtx, D) };
  for (let l = 0; l < o.nLayers; l++) {
    const b = `blocks.${l}.`;
    tensors[`${b}ln1.w`] = gain(D);
    tensors[`${b}ln1.b`] = bias(D);
    for (const x of ['Q', 'K', 'V']) {
      tensors[`${b}attn.W_${x}`] = mat(H, D, E);
      tensors[`${b}attn.b_${x}`] = bias(H, E);
    }
    tensors[`${b}attn.W_O`] = mat(H, E, D);
    tensors[`${b}attn.b_O`] = bias(D);
    // Buffers TransformerLens's attention registers (the causal mask and its fill value): not weights.
    tensors[`${b}attn.mask`] = t([o.nCtx, o.nCtx], () => 1);
    tensors[`${b}attn.IGNORE`] = t([], () => -1e5);
    if (o.attnOnly) continue;
    tensors[`${b}ln2.w`] = gain(D);
    tensors[`${b}ln2.b`] = bias(D);
    tensors[`${b}mlp.W_in`] = mat(D, M);
    tensors[`${b}mlp.b_in`] = bias(M);
    if (act === 'solu_ln') {
      tensors[`${b}mlp.ln.w`] = gain(M);
      tensors[`${b}mlp.ln.b`] = bias(M);
    }
    tensors[`${b}mlp.W_out`] = mat(M, D);
    tensors[`${b}mlp.b_out`] = bias(D);
  }
  tensors['ln_final.w'] = gain(D);
  tensors['ln_final.b'] = bias(D);
  tensors['unembed.W_U'] = mat(D, o.dVocab);
  tensors['unembed.b_U'] = bias(o.dVocab);
  torchSave(join(dir, 'model_final.pth'), tensors, { dtype: o.dtype, root: 'model_final', bool: (n) => n.endsWith('.attn.mask') });
}

/** GPT-2's byte-level alphabet: the printable character that stands for each byte in a byte-level BPE vocabulary. */
function byteLevelAlphabet(): string[] {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let extra = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(printable(b) ? b : 256 + extra++));
}

/**
 * A GPT-NeoX-style tokenizer repo (as NeelNanda/gpt-neox-tokenizer-digits is one): byte-level BPE with
 * <|endoftext|> at id 0 (its BOS and EOS) and <|padding|> at 1, then the 256 byte tokens and a few merges.
 * Returns its vocabulary size.
 */
export function writeNeoxStyleTokenizer(dir: string): number {
  mkdirSync(dir, { recursive: true });
  const vocab: Record<string, number> = { '<|endoftext|>': 0, '<|padding|>': 1 };
  for (const ch of byteLevelAlphabet()) vocab[ch] = Object.keys(vocab).length;
  const merges: string[] = [];
  for (const word of ['Ġt', 'Ġth', 'Ġthe', 'he', 'ĠA', 'ĠAl', 'ĠAli', 'ĠAlic', 'ĠAlice']) {
    const left = word.length === 2 ? word[0]! : word.slice(0, -1);
    merges.push(`${left} ${word.slice(-1)}`);
    vocab[word] = Object.keys(vocab).length;
  }
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<|endoftext|>'), special(1, '<|padding|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ add_prefix_space: false, bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', tokenizer_class: 'GPTNeoXTokenizer' }, null, 2),
  );
  return Object.keys(vocab).length;
}
