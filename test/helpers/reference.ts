/**
 * An independent float64 GPT-2 forward with TransformerLens hook semantics: the oracle the engine is tested
 * against. Written as plain loops so that every step can be read against TransformerLens's source
 * (components/layer_norm.py, abstract_attention.py, transformer_block.py, mlps/mlp.py); speed is no goal.
 * It deliberately shares no code with src/engine beyond the types, so a bug there cannot hide here.
 */
import type { ModelConfig } from '../../src/engine/model/config';
import type { ModelWeights } from '../../src/engine/model/weights';
import type { Tensor32 } from '../../src/engine/tensor';

export interface RefActivation {
  shape: number[];
  data: Float64Array;
}

/** Called at every hook point in forward order with the activation for the whole batch; may modify act.data in place (exactly like a TransformerLens hook fn). */
export type RefHook = (name: string, act: RefActivation) => void;

export interface RefForwardResult {
  logits: RefActivation; // [B, P, V]
  /** Every hook point, holding the value after the hook fn ran (what the rest of the forward used). */
  cache: Map<string, RefActivation>;
}

// Float32 weights widen to float64 exactly, so the reference sees the checkpoint's true values and
// all rounding after that is float64 rounding.
function f64(t: Tensor32): Float64Array {
  return Float64Array.from(t.data);
}

interface Block64 {
  ln1W: Float64Array;
  ln1B: Float64Array;
  wQkv: Float64Array;
  bQkv: Float64Array;
  wO: Float64Array;
  bO: Float64Array;
  ln2W: Float64Array;
  ln2B: Float64Array;
  wIn: Float64Array;
  bIn: Float64Array;
  wOut: Float64Array;
  bOut: Float64Array;
}

interface Weights64 {
  wte: Float64Array;
  wpe: Float64Array;
  blocks: Block64[];
  lnfW: Float64Array;
  lnfB: Float64Array;
  unembed: Float64Array;
}

// Weights are widened once per ModelWeights object: a sweep runs hundreds of forwards on the same model.
const widened = new WeakMap<ModelWeights, Weights64>();

function widen(w: ModelWeights): Weights64 {
  let w64 = widened.get(w);
  if (!w64) {
    w64 = {
      wte: f64(w.wte),
      wpe: f64(w.wpe),
      blocks: w.blocks.map((b) => ({
        ln1W: f64(b.ln1W),
        ln1B: f64(b.ln1B),
        wQkv: f64(b.wQkv),
        bQkv: f64(b.bQkv),
        wO: f64(b.wO),
        bO: f64(b.bO),
        ln2W: f64(b.ln2W),
        ln2B: f64(b.ln2B),
        wIn: f64(b.wIn),
        bIn: f64(b.bIn),
        wOut: f64(b.wOut),
        bOut: f64(b.bOut),
      })),
      lnfW: f64(w.lnfW),
      lnfB: f64(w.lnfB),
      unembed: f64(w.unembed),
    };
    widened.set(w, w64);
  }
  return w64;
}

function checkShapes(cfg: ModelConfig, w: ModelWeights): void {
  const { dModel: D, dMlp: M, dVocab: V, nCtx, nHeads, dHead, nLayers } = cfg;
  const expect = (name: string, t: Tensor32, shape: number[]) => {
    if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`reference: weight ${name} has shape [${t.shape}], expected [${shape}]`);
    }
  };
  if (nHeads * dHead !== D) throw new Error(`reference: nHeads*dHead = ${nHeads * dHead} != dModel ${D}`);
  if (w.blocks.length !== nLayers) throw new Error(`reference: ${w.blocks.length} blocks, config says ${nLayers}`);
  expect('wte', w.wte, [V, D]);
  expect('wpe', w.wpe, [nCtx, D]);
  expect('lnfW', w.lnfW, [D]);
  expect('lnfB', w.lnfB, [D]);
  expect('unembed', w.unembed, [V, D]);
  w.blocks.forEach((b, l) => {
    expect(`blocks.${l}.ln1W`, b.ln1W, [D]);
    expect(`blocks.${l}.ln1B`, b.ln1B, [D]);
    expect(`blocks.${l}.wQkv`, b.wQkv, [D, 3 * D]);
    expect(`blocks.${l}.bQkv`, b.bQkv, [3 * D]);
    expect(`blocks.${l}.wO`, b.wO, [D, D]);
    expect(`blocks.${l}.bO`, b.bO, [D]);
    expect(`blocks.${l}.ln2W`, b.ln2W, [D]);
    expect(`blocks.${l}.ln2B`, b.ln2B, [D]);
    expect(`blocks.${l}.wIn`, b.wIn, [D, M]);
    expect(`blocks.${l}.bIn`, b.bIn, [M]);
    expect(`blocks.${l}.wOut`, b.wOut, [M, D]);
    expect(`blocks.${l}.bOut`, b.bOut, [D]);
  });
}

/**
 * TransformerLens's LayerNorm over the last axis of `rows` rows of length `n`: centre, divide by
 * sqrt(biased variance + eps), then * w + b. Returns the value before the affine step too, because that
 * is what TransformerLens's `hook_normalized` sees (the hook wraps `x / scale`, not the LN's output).
 */
function layerNorm(
  x: Float64Array,
  rows: number,
  n: number,
  w: Float64Array,
  b: Float64Array,
  eps: number,
): { normalized: Float64Array; out: Float64Array } {
  const normalized = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const c = x[r * n + i] - mean;
      normalized[r * n + i] = c;
      sq += c * c;
    }
    const scale = Math.sqrt(sq / n + eps);
    for (let i = 0; i < n; i++) normalized[r * n + i] /= scale;
  }
  return { normalized, out: affine(normalized, rows, n, w, b) };
}

function affine(x: Float64Array, rows: number, n: number, w: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] * w[i] + b[i];
  return out;
}

/** x [rows, nIn] @ W [nIn, nOut] + b [nOut] (the HF Conv1D layout). */
function linear(x: Float64Array, rows: number, nIn: number, W: Float64Array, b: Float64Array, nOut: number): Float64Array {
  const out = new Float64Array(rows * nOut);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let i = 0; i < nIn; i++) s += x[r * nIn + i] * W[i * nOut + o];
      out[r * nOut + o] = s + b[o];
    }
  }
  return out;
}

/**
 * erf to within a few ulp: a positive-term series for |x| < 3 (no cancellation), a continued fraction for
 * erfc beyond. JavaScript has no Math.erf, and the exact GELU needs one.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  const sign = x < 0 ? -1 : 1;
  if (ax < 3) {
    // erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (2 * ax * ax) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return sign * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
  }
  if (ax > 6) return sign; // erfc(6) ~ 2e-17: below half an ulp of 1
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))), evaluated bottom-up.
  let f = ax;
  for (let k = 60; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return sign * (1 - erfc);
}

function activation(kind: ModelConfig['activation'], x: number): number {
  switch (kind) {
    case 'gelu_new':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'relu':
      return x > 0 ? x : 0;
  }
}

export function referenceForward(cfg: ModelConfig, w: ModelWeights, ids: number[][], hook?: RefHook): RefForwardResult {
  checkShapes(cfg, w);
  const W = widen(w);
  const B = ids.length;
  if (B === 0) throw new Error('reference: empty batch');
  const P = ids[0].length;
  if (ids.some((row) => row.length !== P)) throw new Error('reference: rows of unequal length');
  if (P === 0 || P > cfg.nCtx) throw new Error(`reference: ${P} positions, context is ${cfg.nCtx}`);
  const { dModel: D, nHeads: H, dHead: dh, dMlp: M, dVocab: V } = cfg;
  const N = B * P; // rows of every [B, P, ...] activation
  const cache = new Map<string, RefActivation>();

  const runHook = (name: string, shape: number[], data: Float64Array): Float64Array => {
    const act: RefActivation = { shape: [...shape], data };
    hook?.(name, act);
    if (act.data.length !== data.length || act.shape.some((s, i) => s !== shape[i])) {
      throw new Error(`reference: hook on ${name} changed the activation's shape`);
    }
    cache.set(name, act);
    return act.data;
  };

  const embed = new Float64Array(N * D);
  const posEmbed = new Float64Array(N * D);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const t = ids[b][p];
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`reference: token id ${t} outside [0, ${V})`);
      for (let d = 0; d < D; d++) {
        embed[(b * P + p) * D + d] = W.wte[t * D + d];
        posEmbed[(b * P + p) * D + d] = W.wpe[p * D + d];
      }
    }
  }
  const e = runHook('hook_embed', [B, P, D], embed);
  const pe = runHook('hook_pos_embed', [B, P, D], posEmbed);
  // A fresh array at every residual hook, so that a hook editing one point in place cannot reach back
  // into the cached value of an earlier one.
  let resid = new Float64Array(N * D);
  for (let i = 0; i < N * D; i++) resid[i] = e[i] + pe[i];

  for (let l = 0; l < cfg.nLayers; l++) {
    const blk = W.blocks[l];
    const name = (h: string) => `blocks.${l}.${h}`;
    const residPre = runHook(name('hook_resid_pre'), [B, P, D], resid);

    const ln1 = layerNorm(residPre, N, D, blk.ln1W, blk.ln1B, cfg.layerNormEps).out;
    const qkv = linear(ln1, N, D, blk.wQkv, blk.bQkv, 3 * D); // [N, q|k|v], each head-major
    const split = (which: 0 | 1 | 2): Float64Array => {
      // [B, P, H, dh] is [N, D] with D split head-major, so a column slice is already in hook layout.
      const out = new Float64Array(N * D);
      for (let r = 0; r < N; r++) for (let c = 0; c < D; c++) out[r * D + c] = qkv[r * 3 * D + which * D + c];
      return out;
    };
    const q = runHook(name('attn.hook_q'), [B, P, H, dh], split(0));
    const k = runHook(name('attn.hook_k'), [B, P, H, dh], split(1));
    const v = runHook(name('attn.hook_v'), [B, P, H, dh], split(2));

    // TransformerLens divides by attn_scale (not multiplies by its inverse) and masks with -inf before
    // hook_attn_scores, so the hook sees the masked scores.
    const attnScale = Math.sqrt(dh);
    const scores = new Float64Array(B * H * P * P);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < P; j++) {
            let s = 0;
            for (let d = 0; d < dh; d++) s += q[((b * P + i) * H + h) * dh + d] * k[((b * P + j) * H + h) * dh + d];
            scores[((b * H + h) * P + i) * P + j] = j <= i ? s / attnScale : -Infinity;
          }
        }
      }
    }
    const sc = runHook(name('attn.hook_attn_scores'), [B, H, P, P], scores);

    // Softmax over every src, masked or not: a hook may have put finite scores above the diagonal, and
    // TransformerLens then attends there. A row that is all -inf gives NaN, which TransformerLens zeroes.
    const pattern = new Float64Array(B * H * P * P);
    for (let row = 0; row < B * H * P; row++) {
      let max = -Infinity;
      for (let j = 0; j < P; j++) max = Math.max(max, sc[row * P + j]);
      let sum = 0;
      for (let j = 0; j < P; j++) {
        const ex = Math.exp(sc[row * P + j] - max);
        pattern[row * P + j] = ex;
        sum += ex;
      }
      for (let j = 0; j < P; j++) {
        const p = pattern[row * P + j] / sum;
        pattern[row * P + j] = Number.isNaN(p) ? 0 : p;
      }
    }
    const pat = runHook(name('attn.hook_pattern'), [B, H, P, P], pattern);

    // z sums over all src positions (pattern @ v), again so that a patched pattern acts as TransformerLens's does.
    const zArr = new Float64Array(N * D);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < P; i++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < dh; d++) {
            let s = 0;
            for (let j = 0; j < P; j++) s += pat[((b * H + h) * P + i) * P + j] * v[((b * P + j) * H + h) * dh + d];
            zArr[((b * P + i) * H + h) * dh + d] = s;
          }
        }
      }
    }
    const z = runHook(name('attn.hook_z'), [B, P, H, dh], zArr);

    const attnOut = runHook(name('hook_attn_out'), [B, P, D], linear(z, N, D, blk.wO, blk.bO, D));
    const mid = new Float64Array(N * D);
    for (let i = 0; i < N * D; i++) mid[i] = residPre[i] + attnOut[i];
    const residMid = runHook(name('hook_resid_mid'), [B, P, D], mid);

    const ln2 = layerNorm(residMid, N, D, blk.ln2W, blk.ln2B, cfg.layerNormEps).out;
    const pre = runHook(name('mlp.hook_pre'), [B, P, M], linear(ln2, N, D, blk.wIn, blk.bIn, M));
    const postArr = new Float64Array(N * M);
    for (let i = 0; i < N * M; i++) postArr[i] = activation(cfg.activation, pre[i]);
    const post = runHook(name('mlp.hook_post'), [B, P, M], postArr);
    const mlpOut = runHook(name('hook_mlp_out'), [B, P, D], linear(post, N, M, blk.wOut, blk.bOut, D));

    const postResid = new Float64Array(N * D);
    for (let i = 0; i < N * D; i++) postResid[i] = residMid[i] + mlpOut[i];
    const residPost = runHook(name('hook_resid_post'), [B, P, D], postResid);
    resid = Float64Array.from(residPost);
  }

  const lnf = layerNorm(resid, N, D, W.lnfW, W.lnfB, cfg.layerNormEps);
  const normalized = runHook('ln_final.hook_normalized', [B, P, D], lnf.normalized);
  // Recompute the affine step from the hooked value: TransformerLens applies * w + b after the hook.
  const final = affine(normalized, N, D, W.lnfW, W.lnfB);
  const logits = new Float64Array(N * V);
  for (let r = 0; r < N; r++) {
    for (let t = 0; t < V; t++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += final[r * D + d] * W.unembed[t * D + d];
      logits[r * V + t] = s;
    }
  }
  return { logits: { shape: [B, P, V], data: logits }, cache };
}
