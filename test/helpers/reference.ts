/**
 * An independent float64 transformer forward with TransformerLens hook semantics: the oracle the engine is
 * tested against. Weights are held in TransformerLens's per-head form (W_Q [head, d_model, d_head], W_O
 * [head, d_head, d_model], W_U [d_model, vocab]) and each family's checkpoint is read into it by its own
 * adapter (referenceModels.ts), written from the family's Hugging Face modelling code. Written as plain
 * loops so every step can be read against TransformerLens's source (components/layer_norm.py, rms_norm.py,
 * abstract_attention.py, transformer_block.py, mlps/); speed is no goal. It shares no code with src/engine
 * beyond file-format readers, so a bug in the engine's layout or graphs cannot hide here.
 */

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

export type RefActivationFn = 'gelu_new' | 'gelu' | 'relu' | 'silu' | 'solu_ln';

/** TransformerLens's HookedTransformerConfig, as far as the families PatchLens reads need it. */
export interface RefConfig {
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  dModel: number;
  dHead: number;
  dMlp: number;
  dVocab: number;
  nCtx: number;
  /** LayerNorm (centred, with bias) or RMSNorm. */
  norm: 'LN' | 'RMS';
  eps: number;
  /** 'pre' (GPT-2, Llama), 'pre_post' (Gemma: ln1_post / ln2_post too), 'post' (OLMo 2). */
  normPlacement: 'pre' | 'pre_post' | 'post';
  positional: 'standard' | 'shortformer' | 'rotary';
  rotaryDim: number;
  /** Per layer, the rotary inverse frequencies (rotaryDim / 2 of them). */
  rotaryInvFreq: number[][];
  parallel: boolean;
  attnOnly: boolean;
  gated: boolean;
  act: RefActivationFn;
  /** Per layer, what attention scores are divided by. */
  attnScale: number[];
  attnSoftcap: number;
  finalSoftcap: number;
  qkNorm: 'head' | 'full' | null;
  /** Per layer, the sliding window (0: none). */
  window: number[];
}

/** One block's weights in TransformerLens's names and shapes, float64, row-major. */
export interface RefBlock {
  ln1W: Float64Array;
  ln1B?: Float64Array;
  W_Q: Float64Array; // [H, D, E]
  b_Q: Float64Array; // [H, E]
  W_K: Float64Array; // [K, D, E]
  b_K: Float64Array;
  W_V: Float64Array; // [K, D, E]
  b_V: Float64Array;
  W_O: Float64Array; // [H, E, D]
  b_O: Float64Array; // [D]
  qNorm?: Float64Array;
  kNorm?: Float64Array;
  ln1PostW?: Float64Array;
  ln1PostB?: Float64Array;
  ln2W?: Float64Array;
  ln2B?: Float64Array;
  W_in?: Float64Array; // [D, M]
  b_in?: Float64Array; // [M]
  W_gate?: Float64Array; // [D, M]
  mlpLnW?: Float64Array;
  mlpLnB?: Float64Array;
  W_out?: Float64Array; // [M, D]
  b_out?: Float64Array; // [D]
  ln2PostW?: Float64Array;
  ln2PostB?: Float64Array;
}

export interface RefModel {
  cfg: RefConfig;
  W_E: Float64Array; // [V, D]
  /** Gemma: embeddings are multiplied by this before hook_embed (1 otherwise). */
  embedScale: number;
  W_pos?: Float64Array; // [C, D]
  blocks: RefBlock[];
  lnfW: Float64Array;
  lnfB?: Float64Array;
  W_U: Float64Array; // [D, V]
  b_U: Float64Array; // [V]
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

function activation(kind: RefActivationFn, x: number): number {
  switch (kind) {
    case 'gelu_new':
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
    case 'gelu':
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case 'relu':
      return x > 0 ? x : 0;
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'solu_ln':
      throw new Error('reference: SoLU is a softmax over the row, applied by the MLP');
  }
}

/** Runs one forward pass; `hook` sees (and may edit) every hook point, as a TransformerLens hook does. */
export function referenceForward(model: RefModel, ids: number[][], hook?: RefHook): RefForwardResult {
  const cfg = model.cfg;
  const B = ids.length;
  if (B === 0) throw new Error('reference: empty batch');
  const P = ids[0]!.length;
  if (ids.some((row) => row.length !== P)) throw new Error('reference: rows of unequal length');
  if (P === 0 || P > cfg.nCtx) throw new Error(`reference: ${P} positions, context is ${cfg.nCtx}`);
  const { dModel: D, nHeads: H, nKvHeads: K, dHead: E, dMlp: M, dVocab: V } = cfg;
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

  /**
   * TransformerLens's LayerNorm (bias given: centre first) or RMSNorm over rows of length n: hook_scale is
   * √(mean(x²) + eps), hook_normalized is x / scale, then × w (+ b). `lead` is the activation's shape
   * without its last axis.
   */
  const norm = (name: string, x: Float64Array, lead: number[], n: number, w: Float64Array, b?: Float64Array): Float64Array => {
    const rows = x.length / n;
    const centred = new Float64Array(x);
    const scale = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      if (b) {
        let mean = 0;
        for (let i = 0; i < n; i++) mean += x[r * n + i]!;
        mean /= n;
        for (let i = 0; i < n; i++) centred[r * n + i] = x[r * n + i]! - mean;
      }
      let sq = 0;
      for (let i = 0; i < n; i++) sq += centred[r * n + i]! ** 2;
      scale[r] = Math.sqrt(sq / n + cfg.eps);
    }
    const s = runHook(`${name}.hook_scale`, [...lead, 1], scale);
    const normalized = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) normalized[r * n + i] = centred[r * n + i]! / s[r]!;
    const hooked = runHook(`${name}.hook_normalized`, [...lead, n], normalized);
    const out = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) for (let i = 0; i < n; i++) out[r * n + i] = hooked[r * n + i]! * w[i]! + (b ? b[i]! : 0);
    return out;
  };

  /** x [rows, nIn] @ W [nIn, nOut] (+ b). */
  const linear = (x: Float64Array, rows: number, nIn: number, W: Float64Array, nOut: number, b?: Float64Array): Float64Array => {
    const out = new Float64Array(rows * nOut);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < nOut; o++) {
        let s = b ? b[o]! : 0;
        for (let i = 0; i < nIn; i++) s += x[r * nIn + i]! * W[i * nOut + o]!;
        out[r * nOut + o] = s;
      }
    }
    return out;
  };

  /** x [N, D] through per-head weights W [heads, D, E] + b [heads, E] -> [N, heads, E]. */
  const perHead = (x: Float64Array, W: Float64Array, b: Float64Array, heads: number): Float64Array => {
    const out = new Float64Array(N * heads * E);
    for (let r = 0; r < N; r++) {
      for (let h = 0; h < heads; h++) {
        for (let e = 0; e < E; e++) {
          let s = b[h * E + e]!;
          for (let d = 0; d < D; d++) s += x[r * D + d]! * W[(h * D + d) * E + e]!;
          out[(r * heads + h) * E + e] = s;
        }
      }
    }
    return out;
  };

  /** Rotate-half rotary on [B, P, heads, E]: dims i and i + r/2 of the first r turn by pos · invFreq[i]. */
  const rotate = (x: Float64Array, heads: number, invFreq: number[]): Float64Array => {
    const r = cfg.rotaryDim;
    const half = r / 2;
    const out = new Float64Array(x);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p < P; p++) {
        for (let h = 0; h < heads; h++) {
          const base = ((b * P + p) * heads + h) * E;
          for (let i = 0; i < half; i++) {
            const c = Math.cos(p * invFreq[i]!);
            const s = Math.sin(p * invFreq[i]!);
            const x1 = x[base + i]!;
            const x2 = x[base + i + half]!;
            out[base + i] = x1 * c - x2 * s;
            out[base + i + half] = x2 * c + x1 * s;
          }
        }
      }
    }
    return out;
  };

  const embed = new Float64Array(N * D);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) {
      const t = ids[b]![p]!;
      if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`reference: token id ${t} outside [0, ${V})`);
      for (let d = 0; d < D; d++) embed[(b * P + p) * D + d] = model.W_E[t * D + d]! * model.embedScale;
    }
  }
  const e = runHook('hook_embed', [B, P, D], embed);
  // A fresh array at every residual hook, so that a hook editing one point in place cannot reach back
  // into the cached value of an earlier one.
  let resid = Float64Array.from(e);
  let posEmbed: Float64Array | undefined;
  if (cfg.positional !== 'rotary') {
    const pe = new Float64Array(N * D);
    for (let r = 0; r < N; r++) for (let d = 0; d < D; d++) pe[r * D + d] = model.W_pos![(r % P) * D + d]!;
    posEmbed = runHook('hook_pos_embed', [B, P, D], pe);
    if (cfg.positional === 'standard') for (let i = 0; i < N * D; i++) resid[i] = e[i]! + posEmbed[i]!;
  }

  for (let l = 0; l < cfg.nLayers; l++) {
    const blk = model.blocks[l]!;
    const name = (h: string) => `blocks.${l}.${h}`;
    const residPre = runHook(name('hook_resid_pre'), [B, P, D], resid);
    const attnIn = cfg.normPlacement === 'post' ? residPre : norm(name('ln1'), residPre, [B, P], D, blk.ln1W, blk.ln1B);
    let qkIn = attnIn;
    if (cfg.positional === 'shortformer') {
      // TransformerLens's shortformer attention: positions are added to the query and key inputs only.
      qkIn = new Float64Array(N * D);
      for (let i = 0; i < N * D; i++) qkIn[i] = attnIn[i]! + posEmbed![i]!;
    }
    let q = runHook(name('attn.hook_q'), [B, P, H, E], perHead(qkIn, blk.W_Q, blk.b_Q, H));
    let k = runHook(name('attn.hook_k'), [B, P, K, E], perHead(qkIn, blk.W_K, blk.b_K, K));
    const v = runHook(name('attn.hook_v'), [B, P, K, E], perHead(attnIn, blk.W_V, blk.b_V, K));
    if (cfg.qkNorm === 'head') {
      q = norm(name('attn.q_norm'), q, [B, P, H], E, blk.qNorm!);
      k = norm(name('attn.k_norm'), k, [B, P, K], E, blk.kNorm!);
    } else if (cfg.qkNorm === 'full') {
      q = norm(name('attn.q_norm'), q, [B, P], H * E, blk.qNorm!);
      k = norm(name('attn.k_norm'), k, [B, P], K * E, blk.kNorm!);
    }
    if (cfg.positional === 'rotary') {
      q = runHook(name('attn.hook_rot_q'), [B, P, H, E], rotate(q, H, cfg.rotaryInvFreq[l]!));
      k = runHook(name('attn.hook_rot_k'), [B, P, K, E], rotate(k, K, cfg.rotaryInvFreq[l]!));
    }
    // Query head h reads key/value head h / (H / K) (grouped-query attention; K = H otherwise).
    const kvOf = (h: number) => Math.floor(h / (H / K));

    // Scores are divided by the scale, soft-capped, then masked with -inf (causal, and the sliding window on
    // local layers) before hook_attn_scores, so the hook sees what TransformerLens's does.
    const win = cfg.window[l]!;
    const scores = new Float64Array(B * H * P * P);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < P; i++) {
          for (let j = 0; j < P; j++) {
            let s = 0;
            for (let d = 0; d < E; d++) s += q[((b * P + i) * H + h) * E + d]! * k[((b * P + j) * K + kvOf(h)) * E + d]!;
            s /= cfg.attnScale[l]!;
            if (cfg.attnSoftcap) s = cfg.attnSoftcap * Math.tanh(s / cfg.attnSoftcap);
            const visible = j <= i && (win === 0 || i - j < win);
            scores[((b * H + h) * P + i) * P + j] = visible ? s : -Infinity;
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
      for (let j = 0; j < P; j++) max = Math.max(max, sc[row * P + j]!);
      let sum = 0;
      for (let j = 0; j < P; j++) {
        const ex = Math.exp(sc[row * P + j]! - max);
        pattern[row * P + j] = ex;
        sum += ex;
      }
      for (let j = 0; j < P; j++) {
        const p = pattern[row * P + j]! / sum;
        pattern[row * P + j] = Number.isNaN(p) ? 0 : p;
      }
    }
    const pat = runHook(name('attn.hook_pattern'), [B, H, P, P], pattern);

    // z sums over all src positions (pattern @ v), again so that a patched pattern acts as TransformerLens's does.
    const zArr = new Float64Array(N * H * E);
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < P; i++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < E; d++) {
            let s = 0;
            for (let j = 0; j < P; j++) s += pat[((b * H + h) * P + i) * P + j]! * v[((b * P + j) * K + kvOf(h)) * E + d]!;
            zArr[((b * P + i) * H + h) * E + d] = s;
          }
        }
      }
    }
    const z = runHook(name('attn.hook_z'), [B, P, H, E], zArr);
    // W_O [H, E, D] is [H·E, D] row-major: one product over every head's d_head.
    let attnOut = linear(z, N, H * E, blk.W_O, D, blk.b_O);
    if (cfg.normPlacement === 'pre_post') attnOut = norm(name('ln1_post'), attnOut, [B, P], D, blk.ln1PostW!, blk.ln1PostB);
    attnOut = runHook(name('hook_attn_out'), [B, P, D], attnOut);
    const attnAdd = cfg.normPlacement === 'post' ? norm(name('ln1'), attnOut, [B, P], D, blk.ln1W, blk.ln1B) : attnOut;

    const next = new Float64Array(N * D);
    if (cfg.attnOnly) {
      for (let i = 0; i < N * D; i++) next[i] = residPre[i]! + attnAdd[i]!;
    } else {
      let mlpIn = residPre;
      if (!cfg.parallel) {
        const mid = new Float64Array(N * D);
        for (let i = 0; i < N * D; i++) mid[i] = residPre[i]! + attnAdd[i]!;
        mlpIn = runHook(name('hook_resid_mid'), [B, P, D], mid);
      }
      const x = cfg.normPlacement === 'post' ? mlpIn : norm(name('ln2'), mlpIn, [B, P], D, blk.ln2W!, blk.ln2B);
      let post: Float64Array;
      if (cfg.gated) {
        // TransformerLens's GatedMLP: hook_pre is the gate's input, hook_pre_linear the other branch.
        const pre = runHook(name('mlp.hook_pre'), [B, P, M], linear(x, N, D, blk.W_gate!, M));
        const lin = runHook(name('mlp.hook_pre_linear'), [B, P, M], linear(x, N, D, blk.W_in!, M));
        const g = new Float64Array(N * M);
        for (let i = 0; i < N * M; i++) g[i] = activation(cfg.act, pre[i]!) * lin[i]! + blk.b_in![i % M]!;
        post = runHook(name('mlp.hook_post'), [B, P, M], g);
      } else {
        const pre = runHook(name('mlp.hook_pre'), [B, P, M], linear(x, N, D, blk.W_in!, M, blk.b_in));
        if (cfg.act === 'solu_ln') {
          const mid = new Float64Array(N * M);
          for (let r = 0; r < N; r++) {
            let max = -Infinity;
            for (let i = 0; i < M; i++) max = Math.max(max, pre[r * M + i]!);
            let sum = 0;
            for (let i = 0; i < M; i++) sum += Math.exp(pre[r * M + i]! - max);
            for (let i = 0; i < M; i++) mid[r * M + i] = (pre[r * M + i]! * Math.exp(pre[r * M + i]! - max)) / sum;
          }
          const hookedMid = runHook(name('mlp.hook_mid'), [B, P, M], mid);
          post = runHook(name('mlp.hook_post'), [B, P, M], norm(name('mlp.ln'), hookedMid, [B, P], M, blk.mlpLnW!, blk.mlpLnB));
        } else {
          const a = new Float64Array(N * M);
          for (let i = 0; i < N * M; i++) a[i] = activation(cfg.act, pre[i]!);
          post = runHook(name('mlp.hook_post'), [B, P, M], a);
        }
      }
      let mlpOut = linear(post, N, M, blk.W_out!, D, blk.b_out);
      if (cfg.normPlacement === 'pre_post') mlpOut = norm(name('ln2_post'), mlpOut, [B, P], D, blk.ln2PostW!, blk.ln2PostB);
      mlpOut = runHook(name('hook_mlp_out'), [B, P, D], mlpOut);
      const mlpAdd = cfg.normPlacement === 'post' ? norm(name('ln2'), mlpOut, [B, P], D, blk.ln2W!, blk.ln2B) : mlpOut;
      for (let i = 0; i < N * D; i++) next[i] = cfg.parallel ? residPre[i]! + attnAdd[i]! + mlpAdd[i]! : mlpIn[i]! + mlpAdd[i]!;
    }
    resid = Float64Array.from(runHook(name('hook_resid_post'), [B, P, D], next));
  }

  const final = norm('ln_final', resid, [B, P], D, model.lnfW, model.lnfB);
  const logits = linear(final, N, D, model.W_U, V, model.b_U);
  if (cfg.finalSoftcap) for (let i = 0; i < logits.length; i++) logits[i] = cfg.finalSoftcap * Math.tanh(logits[i]! / cfg.finalSoftcap);
  return { logits: { shape: [B, P, V], data: logits }, cache };
}

/** The hook names a forward of this model fires, in order (what `runWithCache` returns). */
export function referenceHookNames(model: RefModel): string[] {
  const ids = [[0]];
  return [...referenceForward(model, ids).cache.keys()];
}
