/**
 * `induction-2l`: a 2-layer, attention-only GPT-2 whose weights are written by the code below, not
 * trained, so its circuit is known exactly: a previous-token head in layer 0 and an induction head in
 * layer 1 (K-composition through a "previous token" subspace), plus distractor heads that do nothing
 * useful. Patching must find exactly this circuit (test/engine/inductionCircuit.test.ts derives what
 * each sweep shows from the numbers here).
 *
 * ## The residual stream
 *
 * d_model = 256. Everything the model writes lies in a 255-dimensional "logical" space orthogonal to
 * the all-ones vector: LayerNorm subtracts the mean over d_model, and a vector with zero mean passes
 * that step untouched. The logical axes are the columns 1…255 of the Householder reflection H that
 * swaps e₀ with ones/√256 (column j is e_j, minus 1/240 on coordinates 1…255, plus 1/16 on coordinate
 * 0), so logical axis j is very nearly real coordinate j; coordinate 0 carries the correction:
 *
 *   axes   1…63   TOK       identity of the token at this position (63 dims)
 *   axis   64     BOS       set only by <|endoftext|>, which has no TOK part
 *   axes  65…128  POS       position i is axis 65+i: one-hot, so positions are exactly orthonormal
 *   axes 129…191  PREV_TOK  the previous token's TOK vector, written by the previous-token head
 *   axis  192     PREV_BOS  the previous token's BOS axis, written by the same head
 *   axes 193…255  OUT       the predicted next token's TOK vector, written by the induction head
 *
 * Every token but BOS gets a random ±1/√63 vector in TOK (Rademacher, seeded; integer arithmetic
 * only, so the file is byte-identical on every machine): unit norm, and two different tokens overlap
 * by about ±1/√63 ≈ 0.13 (the best 50257 vectors in 63 dimensions can do on average).
 *
 * ## LayerNorm
 *
 * Each term above has norm exactly 1 (a token, a position, a copied token, a predicted token), and
 * the terms are orthogonal, so the residual norm is known: √2 after the embedding (token + position),
 * √3 after layer 0 (+ previous token), 2 after layer 1 when the induction head copies a token (√3
 * when it attends to BOS and copies nothing). LayerNorm of a zero-mean x is x·g·√256/|x|, so each
 * gain is set to g = N/√256 with N that design norm: LayerNorm is then the identity on the stream it
 * was designed for, and the weights below read logical units directly. LN biases are 0; ln_2 is
 * irrelevant (the MLPs are all zero: GELU(0) = 0, so each MLP adds exactly 0).
 *
 * ## Layer 0, head 1: previous-token head
 *
 * QK reads only POS: the query maps position i to head axis i−1, the key maps position j to axis j,
 * each with gain κ = √(β_p·√d_head), so the score is β_p = 20 at j = i−1 and 0 elsewhere: attention
 * to i−1 is 1 − O(40·e⁻²⁰). OV reads TOK and BOS and writes them, with gain 1, to PREV_TOK and
 * PREV_BOS. Position 0 can only attend to itself; it gets PREV_BOS = 1, as position 1 does (whose
 * previous token is BOS), so every position's previous-token term has norm 1.
 *
 * ## Layer 1, head 2: induction head
 *
 * The query reads TOK (the current token), the key reads PREV_TOK (the token before the key's
 * position), gains √(β·√d_head), so the score is β·⟨tok_i, prev_j⟩: β = 30 where the key's previous
 * token is the current token, β·N(0, 1/63) (σ ≈ 3.8) elsewhere. A sink on BOS scores 0.6β = 18 (a
 * query bias on the last head axis times the key's BOS axis): a match beats it by 12 (attention
 * ≥ 1 − 10⁻⁵ on the match), and with no match BOS takes the attention, leaking about
 * 40·E[e^{β·x}]·e⁻¹⁸ ≈ 40·e^{6.9−18} ≈ 10⁻³ to the rest. (A sink at β/2 balances the two errors
 * for a gap of β/2; 0.6β trades a little match margin for much less leak.) OV reads TOK and writes
 * it, gain 1, to OUT: attending to the position after the earlier occurrence of the current token
 * copies the token that followed it. BOS has no TOK part, so the sink copies nothing.
 *
 * ## Unembedding (untied)
 *
 * lm_head row v = s · (token v's TOK vector placed in OUT), s = 30; BOS's row is 0. After ln_f (gain
 * for norm 2) a copied token t gets logit s = 30 and every other token s·⟨tok_v, tok_t⟩ ≈ 30·N(0,
 * 1/63), so log p(t) ≈ −50257·E[e^{s·x}]·e^{−s} ≈ −50257·e^{6.9−30} ≈ −10⁻⁵. With nothing copied all
 * logits are 0 and log p = −log 50257 ≈ −10.82 for every token. When the head copies the wrong token
 * (a different sequence repeated), the target gets ≈ s·N(0, 1/63) − s ≈ −30.
 *
 * ## Distractors
 *
 * Layer 0 heads 0, 2, 3 and layer 1 heads 0, 1, 3 have small uniform random Q, K, V (scores of order
 * 1: mild, unstructured patterns) and a random output map with zero mean over d_model, scaled so the
 * Frobenius norm of W_V·W_O is ε/N (N the design norm the head reads): a distractor writes at most
 * ε = 0.01 into the residual at any position.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { replaceFile } from '../../../common/fileWrite';
import type { Tensor32 } from '../../tensor';
import { GPT2_EOT_ID, GPT2_VOCAB_SIZE, writeGpt2TokenizerFiles } from '../gpt2Tokenizer';
import { writeSafetensors } from '../safetensors';
import { mulberry32 } from '../../random';

export const INDUCTION_2L = {
  dModel: 256,
  nHeads: 4,
  dHead: 64,
  nLayers: 2,
  nCtx: 64,
  dVocab: GPT2_VOCAB_SIZE,
  /** TOK, PREV_TOK and OUT each have this many dimensions. */
  dTok: 63,
  /** Layer 0 head that attends to the previous position and copies its token. */
  prevTokenHead: { layer: 0, head: 1 },
  /** Layer 1 head that attends to the position after an earlier copy of the current token. */
  inductionHead: { layer: 1, head: 2 },
  /** Previous-token score at i−1 (0 elsewhere). */
  betaPrev: 20,
  /** Induction score for a matching key. */
  beta: 30,
  /** BOS sink score, as a fraction of beta. */
  sinkFraction: 0.6,
  /** Unembedding gain: the logit of a copied token. */
  unembedScale: 30,
  /** Largest norm a distractor head writes at any position. */
  distractorMaxNorm: 0.01,
  seed: 0x1d0c7,
} as const;

const C = INDUCTION_2L;
const D = C.dModel;
const T = C.dTok;
const DH = C.dHead;

// Logical axes (see the layout above).
const TOK = 1;
const BOS = TOK + T;
const POS = BOS + 1;
const PREV_TOK = POS + C.nCtx;
const PREV_BOS = PREV_TOK + T;
const OUT = PREV_BOS + 1;
if (OUT + T !== D) throw new Error('induction-2l: the logical layout must fill d_model exactly');

/** Design norms of the residual each LayerNorm sees (module comment, "LayerNorm"). */
const NORM_LAYER0 = Math.sqrt(2);
const NORM_LAYER1 = Math.sqrt(3);
const NORM_FINAL = 2;

/**
 * Writes logical vector `l` (index 0 ignored) in real coordinates into `out` at `at`: Σ_j l_j·H_j.
 * With S = Σ_{j≥1} l_j, H·l has S/16 at coordinate 0 and l_k − S/240 at k ≥ 1 (d_model 256).
 */
function toReal(l: Float64Array, out: Float32Array, at: number, stride = 1): void {
  let s = 0;
  for (let j = 1; j < D; j++) s += l[j]!;
  const sqrtD = Math.sqrt(D);
  out[at] = s / sqrtD;
  const shift = s / (sqrtD * (sqrtD - 1));
  for (let k = 1; k < D; k++) out[at + k * stride] = l[k]! - shift;
}

/** TOK vectors, row v at v·T; BOS's row stays 0. Signs from the bits of the PRNG, 32 per draw. */
function tokenVectors(rand: () => number): Float64Array {
  const V = C.dVocab;
  const out = new Float64Array(V * T);
  const unit = 1 / Math.sqrt(T);
  let bits = 0;
  let left = 0;
  for (let v = 0; v < V; v++) {
    for (let k = 0; k < T; k++) {
      if (left === 0) {
        bits = rand();
        left = 32;
      }
      const sign = bits & 1 ? 1 : -1;
      bits >>>= 1;
      left--;
      if (v !== GPT2_EOT_ID) out[v * T + k] = sign * unit;
    }
  }
  return out;
}

function zeros(shape: number[]): Tensor32 {
  return { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) };
}

function filled(n: number, value: number): Tensor32 {
  return { shape: [n], data: new Float32Array(n).fill(value) };
}

/**
 * One block's attention weights in HF layout: c_attn [D, 3D] (Q | K | V, head h at columns h·d_head…),
 * c_proj [D, D] (rows: head h's axes). `readQ/K/V(h, m)` give logical input columns, `write(h, m)` the
 * logical output row of head axis m; null leaves the column zero.
 */
class AttnWeights {
  readonly cAttn = zeros([D, 3 * D]);
  readonly cAttnBias = zeros([3 * D]);
  readonly cProj = zeros([D, D]);
  readonly cProjBias = zeros([D]);

  /** Sets the real column of `which` (0 Q, 1 K, 2 V) for head h, axis m, from a logical vector. */
  setIn(which: 0 | 1 | 2, h: number, m: number, logical: Float64Array): void {
    toReal(logical, this.cAttn.data, which * D + h * DH + m, 3 * D);
  }

  setOut(h: number, m: number, logical: Float64Array): void {
    toReal(logical, this.cProj.data, (h * DH + m) * D);
  }
}

function axis(j: number, value = 1): Float64Array {
  const l = new Float64Array(D);
  l[j] = value;
  return l;
}

function prevTokenHead(w: AttnWeights, h: number): void {
  const kappa = Math.sqrt(C.betaPrev * Math.sqrt(DH));
  for (let i = 1; i < C.nCtx; i++) w.setIn(0, h, i - 1, axis(POS + i, kappa));
  for (let j = 0; j < C.nCtx; j++) w.setIn(1, h, j, axis(POS + j, kappa));
  for (let k = 0; k < T; k++) {
    w.setIn(2, h, k, axis(TOK + k));
    w.setOut(h, k, axis(PREV_TOK + k));
  }
  w.setIn(2, h, T, axis(BOS));
  w.setOut(h, T, axis(PREV_BOS));
}

function inductionHead(w: AttnWeights, h: number): void {
  const kappa = Math.sqrt(C.beta * Math.sqrt(DH));
  for (let k = 0; k < T; k++) {
    w.setIn(0, h, k, axis(TOK + k, kappa));
    w.setIn(1, h, k, axis(PREV_TOK + k, kappa));
    w.setIn(2, h, k, axis(TOK + k));
    w.setOut(h, k, axis(OUT + k));
  }
  // Sink: query bias × key's BOS axis, each √(0.6β·√d_head), on the head axis T is free for.
  const sink = Math.sqrt(C.sinkFraction * C.beta * Math.sqrt(DH));
  w.cAttnBias.data[h * DH + T] = sink;
  w.setIn(1, h, T, axis(BOS, sink));
}

/**
 * Random small head: Q, K, V uniform in ±1 (real coordinates; scores of order 1 on a unit-scale
 * stream), W_O uniform with each row's mean removed, then scaled so |W_V·W_O|_F = ε / readNorm, which
 * bounds the head's output by ε at every position (attention averages inputs of norm ≤ readNorm).
 */
function distractorHead(w: AttnWeights, h: number, rand: () => number, readNorm: number): void {
  const u = (): number => (rand() / 4294967296) * 2 - 1;
  for (let which = 0; which < 3; which++) {
    for (let d = 0; d < D; d++) for (let m = 0; m < DH; m++) w.cAttn.data[d * 3 * D + which * D + h * DH + m] = u();
  }
  const wo = new Float64Array(DH * D);
  for (let m = 0; m < DH; m++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += wo[m * D + d] = u();
    mean /= D;
    for (let d = 0; d < D; d++) wo[m * D + d]! -= mean;
  }
  let frob2 = 0;
  const row = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    row.fill(0);
    for (let m = 0; m < DH; m++) {
      const v = w.cAttn.data[d * 3 * D + 2 * D + h * DH + m]!;
      for (let e = 0; e < D; e++) row[e]! += v * wo[m * D + e]!;
    }
    for (let e = 0; e < D; e++) frob2 += row[e]! * row[e]!;
  }
  const scale = C.distractorMaxNorm / readNorm / Math.sqrt(frob2);
  for (let m = 0; m < DH; m++) for (let e = 0; e < D; e++) w.cProj.data[(h * DH + m) * D + e] = wo[m * D + e]! * scale;
}

/** The HF GPT-2 config.json (GPT2LMHeadModel.save_pretrained's fields), untied unembedding. */
function hfConfig(): Record<string, unknown> {
  return {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0,
    bos_token_id: GPT2_EOT_ID,
    embd_pdrop: 0,
    eos_token_id: GPT2_EOT_ID,
    initializer_range: 0.02,
    layer_norm_epsilon: 1e-5,
    model_type: 'gpt2',
    n_ctx: C.nCtx,
    n_embd: D,
    n_head: C.nHeads,
    n_inner: null,
    n_layer: C.nLayers,
    n_positions: C.nCtx,
    reorder_and_upcast_attn: false,
    resid_pdrop: 0,
    scale_attn_by_inverse_layer_idx: false,
    scale_attn_weights: true,
    summary_activation: null,
    summary_first_dropout: 0,
    summary_proj_to_labels: true,
    summary_type: 'cls_index',
    summary_use_proj: true,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: C.dVocab,
  };
}

/** Writes config.json, model.safetensors and GPT-2's tokenizer files into `dir`. */
export function writeInduction2l(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const rand = mulberry32(C.seed);
  const V = C.dVocab;
  const tok = tokenVectors(rand);

  const wte = zeros([V, D]);
  const lmHead = zeros([V, D]);
  const l = new Float64Array(D);
  for (let v = 0; v < V; v++) {
    l.fill(0);
    if (v === GPT2_EOT_ID) l[BOS] = 1;
    else for (let k = 0; k < T; k++) l[TOK + k] = tok[v * T + k]!;
    toReal(l, wte.data, v * D);
    if (v === GPT2_EOT_ID) continue;
    l.fill(0);
    for (let k = 0; k < T; k++) l[OUT + k] = C.unembedScale * tok[v * T + k]!;
    toReal(l, lmHead.data, v * D);
  }
  const wpe = zeros([C.nCtx, D]);
  for (let i = 0; i < C.nCtx; i++) toReal(axis(POS + i), wpe.data, i * D);

  const gain = (norm: number): Tensor32 => filled(D, norm / Math.sqrt(D));
  const dMlp = 4 * D;
  const tensors: Record<string, Tensor32> = {
    'transformer.wte.weight': wte,
    'transformer.wpe.weight': wpe,
    'transformer.ln_f.weight': gain(NORM_FINAL),
    'transformer.ln_f.bias': zeros([D]),
    'lm_head.weight': lmHead,
  };
  const readNorms = [NORM_LAYER0, NORM_LAYER1];
  for (let layer = 0; layer < C.nLayers; layer++) {
    const w = new AttnWeights();
    for (let h = 0; h < C.nHeads; h++) {
      if (layer === C.prevTokenHead.layer && h === C.prevTokenHead.head) prevTokenHead(w, h);
      else if (layer === C.inductionHead.layer && h === C.inductionHead.head) inductionHead(w, h);
      else distractorHead(w, h, rand, readNorms[layer]!);
    }
    const p = `transformer.h.${layer}.`;
    tensors[`${p}ln_1.weight`] = gain(readNorms[layer]!);
    tensors[`${p}ln_1.bias`] = zeros([D]);
    tensors[`${p}attn.c_attn.weight`] = w.cAttn;
    tensors[`${p}attn.c_attn.bias`] = w.cAttnBias;
    tensors[`${p}attn.c_proj.weight`] = w.cProj;
    tensors[`${p}attn.c_proj.bias`] = w.cProjBias;
    tensors[`${p}ln_2.weight`] = filled(D, 1);
    tensors[`${p}ln_2.bias`] = zeros([D]);
    tensors[`${p}mlp.c_fc.weight`] = zeros([D, dMlp]);
    tensors[`${p}mlp.c_fc.bias`] = zeros([dMlp]);
    tensors[`${p}mlp.c_proj.weight`] = zeros([dMlp, D]);
    tensors[`${p}mlp.c_proj.bias`] = zeros([D]);
  }
  replaceFile(join(dir, 'config.json'), `${JSON.stringify(hfConfig(), null, 2)}\n`);
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  writeGpt2TokenizerFiles(dir);
}
