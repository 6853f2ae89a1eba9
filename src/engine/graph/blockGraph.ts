import { blockHooks, type BlockHook } from '../hooks';
import type { ModelConfig } from '../model/config';
import { blockWeightShapes, type BlockWeightName } from '../model/weights';
import { GraphBuilder } from './graphBuilder';
import { hookPoint, type HookVariant } from './hookPoint';
import { activation, linear, norm, rotary } from './layers';
import { DataType } from './onnxProto';

/**
 * Which hooks a block graph returns and which it accepts patches for. With `withPast`, the graph computes
 * only a suffix of the positions: the keys and values of the prefix come in as inputs (`past_k`, `past_v`,
 * [pairs, past, kv_heads, d_head], as hook_k / hook_v hold them: before q/k norms and rotary, which the
 * graph applies to prefix and suffix alike) and positions are offset by the prefix length. The batch is
 * then copies of the prompt pairs (row r is pair r % pairs), and every copy attends to the same prefix.
 */
export interface BlockVariant extends HookVariant {
  readonly capture: readonly BlockHook[];
  readonly patch: readonly BlockHook[];
  readonly withPast: boolean;
  /**
   * Compute the block's output only at some positions: attention runs for every position (its keys and
   * values are everyone's), then the rows in `out_rows` (int64 [n], flat batch * pos indices) are kept
   * for the output projection and the MLP, which are most of a block's work. The output, and every hook
   * from hook_attn_out on (gatheredHooks), is then [1, n, ...].
   */
  readonly gather?: boolean;
  /**
   * Project to queries, keys and values only the tokens in `qkv_rows` (int64 [m], flat batch * pos
   * indices): every other token's input is the unpatched run's, so its q, k and v are the run's, which
   * come in as `run_q`, `run_k`, `run_v` ([pairs, pos, width], the hooks' values at these positions; row
   * r reads pair r % pairs). The projection is a quarter of a block's matrix work.
   */
  readonly qkvRows?: boolean;
}

/** The hooks a gathered block holds only at its kept rows: everything after attention's output, hook_z. */
export function gatheredHooks(cfg: ModelConfig): ReadonlySet<BlockHook> {
  const names = [...blockHooks(cfg).keys()];
  return new Set(names.slice(names.indexOf('attn.hook_z') + 1));
}

/**
 * Per-layer inputs besides the weights: the attention divisor, the sliding window (0: none), and the
 * rotary tables of the layer's base, or the learned position table for shortformer attention.
 */
export function blockExtraInputs(cfg: ModelConfig): string[] {
  const names = ['attn_scale', 'window'];
  if (cfg.positional === 'rotary') names.push('rope_cos', 'rope_sin');
  if (cfg.positional === 'shortformer') names.push('wpe');
  return names;
}

/**
 * One transformer block as TransformerLens computes it, for every family the config describes (norm
 * placement, parallel or sequential MLP, gated or plain MLP, grouped-query attention, rotary or learned
 * positions, soft-capping, sliding windows, q/k norms). One graph serves every layer: weights are inputs.
 */
export function buildBlockGraph(cfg: ModelConfig, v: BlockVariant): Uint8Array {
  const g = new GraphBuilder();
  writeBlockGraph(g, cfg, v);
  return g.build('block');
}

/** The same graph written into `g` (gradients.ts appends its backward pass). */
export function writeBlockGraph(g: GraphBuilder, cfg: ModelConfig, v: BlockVariant): void {
  const hooks = blockHooks(cfg);
  const { dModel: D, nHeads: H, nKvHeads: K, dHead: E } = cfg;
  const w = {} as Record<BlockWeightName, string>;
  for (const [name, shape] of blockWeightShapes(cfg)) w[name] = g.input(name, DataType.FLOAT, shape);
  let gathered = false;
  const hp = (hook: BlockHook, value: string) => hookPoint(g, v, hook, hooks.get(hook)!, value, gathered);
  const nrm = (name: string, x: string, gain: string, bias?: string) =>
    norm(g, v, name, { scale: hooks.get(`${name}.hook_scale`)!, normalized: hooks.get(`${name}.hook_normalized`)! }, x, cfg.normEps, gain, bias);
  const B = 'batch';
  const P = 'pos';

  const residPre = hp('hook_resid_pre', g.input('resid_pre', DataType.FLOAT, [B, P, D]));
  const attnIn = cfg.normPlacement === 'post' ? residPre : nrm('ln1', residPre, w.ln1W, w.ln1B);

  // Positions: the suffix's queries sit at past .. past + pos - 1, the keys at 0 .. past + pos - 1.
  const zero = g.constInt64([0], []);
  const one = g.constInt64([1], []);
  const dim = (t: string, axis: number) => g.op('Gather', [g.op('Shape', [t]), g.constInt64([axis], [])], { axis: 0 });
  const nQ = dim(residPre, 1);
  const pastLen = v.withPast ? dim(g.input('past_k', DataType.FLOAT, ['pairs', 'past', K, E]), 1) : zero;
  const nKeys = g.op('Add', [pastLen, nQ]);
  const qPositions = g.op('Range', [pastLen, nKeys, one]);
  const kPositions = g.op('Range', [zero, nKeys, one]);

  const toHeads = (x: string, n: number) => g.op('Reshape', [x, g.constInt64([0, 0, n, E])]);
  const widths = [H * E, K * E, K * E];
  // One product with the fused q|k|v weights; splitting the weights instead would copy them every run.
  const split = (x: string) => g.opN('Split', [linear(g, x, w.wQkv, w.bQkv), g.constInt64(widths)], 3, { axis: -1 });
  const wpe = cfg.positional === 'shortformer' ? g.input('wpe', DataType.FLOAT, [cfg.nCtx, D]) : '';
  /** q, k and v ([..., width] each) of `x` whose tokens sit at `positions`. */
  const project = (x: string, positions: string): string[] => {
    const [q, k, v] = split(x);
    if (!wpe) return [q!, k!, v!];
    // TransformerLens's shortformer: positions enter the query and key inputs only, never the residual stream.
    const [qPos, kPos] = split(g.op('Add', [x, g.op('Gather', [wpe, positions], { axis: 0 })]));
    return [qPos!, kPos!, v!];
  };
  let flats: string[];
  if (v.qkvRows) {
    const picked = g.input('qkv_rows', DataType.INT64, ['qkv']);
    const fresh = project(
      g.op('Gather', [g.op('Reshape', [attnIn, g.constInt64([-1, D])]), picked], { axis: 0 }),
      g.op('Gather', [qPositions, g.op('Mod', [picked, nQ])], { axis: 0 }),
    );
    const batchAndPos = g.op('Slice', [g.op('Shape', [residPre]), g.constInt64([0]), g.constInt64([2])]);
    const runPairs = dim('run_q', 0);
    const copies = g.op('Unsqueeze', [g.op('Div', [dim(residPre, 0), runPairs]), g.constInt64([0])]);
    const at = g.op('Unsqueeze', [picked, g.constInt64([1])]);
    flats = (['run_q', 'run_k', 'run_v'] as const).map((name, i) => {
      const run = g.input(name, DataType.FLOAT, ['pairs', P, widths[i]!]);
      const everyCopy = g.op('Expand', [g.op('Unsqueeze', [run, g.constInt64([0])]), g.op('Concat', [copies, g.op('Shape', [run])], { axis: 0 })]);
      const flat = g.op('Reshape', [everyCopy, g.constInt64([-1, widths[i]!])]);
      return g.op('Reshape', [g.op('ScatterND', [flat, at, fresh[i]!]), g.op('Concat', [batchAndPos, g.constInt64([widths[i]!])], { axis: 0 })]);
    });
  } else flats = project(attnIn, qPositions);
  let q = hp('attn.hook_q', toHeads(flats[0]!, H));
  const kOwn = hp('attn.hook_k', toHeads(flats[1]!, K));
  const vOwn = hp('attn.hook_v', toHeads(flats[2]!, K));
  if (v.withPast) {
    // The key-side hooks would hold prefix and suffix keys together, which this variant never forms.
    const keySideHooks = [...hooks].filter(([, info]) => info.keySide).map(([name]) => name);
    const used = keySideHooks.filter((h) => v.capture.includes(h) || v.patch.includes(h));
    if (used.length > 0) throw new Error(`a block run with past keys cannot read or write ${used.join(', ')}`);
  }
  const cos = cfg.positional === 'rotary' ? g.input('rope_cos', DataType.FLOAT, ['rope_positions', cfg.rotary!.dim / 2]) : '';
  const sin = cfg.positional === 'rotary' ? g.input('rope_sin', DataType.FLOAT, ['rope_positions', cfg.rotary!.dim / 2]) : '';
  // Grouped-query attention: query head h reads key/value head h / (H / K) (torch's repeat_interleave).
  const toQueryHeads = (x: string) =>
    K === H ? x : g.op('Reshape', [g.op('Expand', [g.op('Unsqueeze', [x, g.constInt64([3])]), g.constInt64([1, 1, 1, H / K, 1])]), g.constInt64([0, 0, H, E])]);
  /** Keys as attention reads them: q/k norm, rotary at their positions, one per query head. */
  const keysAt = (k: string, positions: string) => {
    let out = k;
    if (cfg.qkNorm === 'head') out = nrm('attn.k_norm', out, w.kNormW!);
    else if (cfg.qkNorm === 'full') out = toHeads(nrm('attn.k_norm', g.op('Reshape', [out, g.constInt64([0, 0, K * E])]), w.kNormW!), K);
    if (cfg.positional === 'rotary') out = hp('attn.hook_rot_k', rotary(g, cfg, out, positions, cos, sin));
    return toQueryHeads(out);
  };
  if (cfg.qkNorm === 'head') q = nrm('attn.q_norm', q, w.qNormW!);
  else if (cfg.qkNorm === 'full') q = toHeads(nrm('attn.q_norm', g.op('Reshape', [q, g.constInt64([0, 0, H * E])]), w.qNormW!), H);
  if (cfg.positional === 'rotary') q = hp('attn.hook_rot_q', rotary(g, cfg, q, qPositions, cos, sin));

  const qT = g.op('Transpose', [q], { perm: [0, 2, 1, 3] }); // [rows, H, S, E]
  const ownKeys = keysAt(kOwn, qPositions);
  let rawScores = g.op('MatMul', [qT, g.op('Transpose', [ownKeys], { perm: [0, 2, 3, 1] })]);
  // The prefix's keys and values are the same for every copy of the prompt pairs in the batch: they come
  // in once per pair ([pairs, past, ...]) and meet the queries through a broadcasting product over a
  // [copies, pairs, ...] view, instead of a copy per row.
  const pairs = v.withPast ? dim('past_k', 0) : zero;
  const byCopy = (x: string, rest: string[]) => g.op('Reshape', [x, g.op('Concat', [g.constInt64([-1]), g.op('Unsqueeze', [pairs, g.constInt64([0])]), ...rest], { axis: 0 })]);
  const asRows = (x: string, rest: string[]) => g.op('Reshape', [x, g.op('Concat', [g.constInt64([-1]), ...rest], { axis: 0 })]);
  const vec = (n: number) => g.constInt64([n]);
  const nQ1 = g.op('Unsqueeze', [nQ, g.constInt64([0])]);
  const pastLen1 = g.op('Unsqueeze', [pastLen, g.constInt64([0])]);
  if (v.withPast) {
    const pastKeys = keysAt('past_k', g.op('Range', [zero, pastLen, one]));
    const pastScores = g.op('MatMul', [byCopy(qT, [vec(H), nQ1, vec(E)]), g.op('Transpose', [pastKeys], { perm: [0, 2, 3, 1] })]);
    rawScores = g.op('Concat', [asRows(pastScores, [vec(H), nQ1, pastLen1]), rawScores], { axis: -1 });
  }
  let scores = g.op('Div', [rawScores, g.input('attn_scale', DataType.FLOAT, [])]);
  if (cfg.attnSoftcap) {
    const cap = g.constFloat([cfg.attnSoftcap], []);
    scores = g.op('Mul', [g.op('Tanh', [g.op('Div', [scores, cap])]), cap]);
  }
  // Causal mask, narrowed to the sliding window on local layers: query q sees keys q - window < k <= q.
  const qCol = g.op('Unsqueeze', [qPositions, g.constInt64([1])]);
  const kRow = g.op('Unsqueeze', [kPositions, g.constInt64([0])]);
  const window = g.input('window', DataType.INT64, []);
  const inWindow = g.op('Or', [g.op('Equal', [window, zero]), g.op('Less', [g.op('Sub', [qCol, kRow]), window])]);
  const visible = g.op('And', [g.op('GreaterOrEqual', [qCol, kRow]), inWindow]);
  scores = hp('attn.hook_attn_scores', g.op('Where', [visible, scores, g.constFloat([-Infinity], [])]));
  const pattern = hp('attn.hook_pattern', g.op('Softmax', [scores], { axis: -1 }));
  const valuesT = (x: string) => g.op('Transpose', [toQueryHeads(x)], { perm: [0, 2, 1, 3] });
  let zT: string;
  if (v.withPast) {
    const axis = g.constInt64([3]);
    const ownPattern = g.op('Slice', [pattern, pastLen1, g.op('Unsqueeze', [nKeys, g.constInt64([0])]), axis]);
    const pastPattern = g.op('Slice', [pattern, g.constInt64([0]), pastLen1, axis]);
    const pastValues = valuesT(g.input('past_v', DataType.FLOAT, ['pairs', 'past', K, E]));
    const fromPast = asRows(g.op('MatMul', [byCopy(pastPattern, [vec(H), nQ1, pastLen1]), pastValues]), [vec(H), nQ1, vec(E)]);
    zT = g.op('Add', [fromPast, g.op('MatMul', [ownPattern, valuesT(vOwn)])]);
  } else zT = g.op('MatMul', [pattern, valuesT(vOwn)]);
  const z = hp('attn.hook_z', g.op('Transpose', [zT], { perm: [0, 2, 1, 3] }));
  let zFlat = g.op('Reshape', [z, g.constInt64([0, 0, H * E])]);
  let residIn = residPre;
  if (v.gather) {
    const rows = g.input('out_rows', DataType.INT64, ['out']);
    const keep = (x: string, width: number) => g.op('Unsqueeze', [g.op('Gather', [g.op('Reshape', [x, g.constInt64([-1, width])]), rows], { axis: 0 }), g.constInt64([0])]);
    zFlat = keep(zFlat, H * E);
    residIn = keep(residPre, D);
    gathered = true;
  }
  let attnOut = linear(g, zFlat, w.wO, w.bO);
  if (cfg.normPlacement === 'pre_post') attnOut = nrm('ln1_post', attnOut, w.ln1PostW!, w.ln1PostB);
  attnOut = hp('hook_attn_out', attnOut);
  const attnContribution = cfg.normPlacement === 'post' ? nrm('ln1', attnOut, w.ln1W, w.ln1B) : attnOut;

  let residPost: string;
  if (cfg.attnOnly) {
    residPost = g.op('Add', [residIn, attnContribution]);
  } else {
    const mlpIn = cfg.parallelAttnMlp ? residIn : hp('hook_resid_mid', g.op('Add', [residIn, attnContribution]));
    const x = cfg.normPlacement === 'post' ? mlpIn : nrm('ln2', mlpIn, w.ln2W!, w.ln2B);
    let post: string;
    if (cfg.gatedMlp) {
      const pre = hp('mlp.hook_pre', linear(g, x, w.wGate!));
      const lin = hp('mlp.hook_pre_linear', linear(g, x, w.wIn!));
      post = hp('mlp.hook_post', g.op('Add', [g.op('Mul', [activation(g, cfg.activation, pre), lin]), w.bIn!]));
    } else {
      const pre = hp('mlp.hook_pre', linear(g, x, w.wIn!, w.bIn));
      if (cfg.activation === 'solu_ln') {
        const mid = hp('mlp.hook_mid', activation(g, cfg.activation, pre));
        post = hp('mlp.hook_post', nrm('mlp.ln', mid, w.mlpLnW!, w.mlpLnB));
      } else post = hp('mlp.hook_post', activation(g, cfg.activation, pre));
    }
    let mlpOut = linear(g, post, w.wOut!, w.bOut);
    if (cfg.normPlacement === 'pre_post') mlpOut = nrm('ln2_post', mlpOut, w.ln2PostW!, w.ln2PostB);
    mlpOut = hp('hook_mlp_out', mlpOut);
    const mlpContribution = cfg.normPlacement === 'post' ? nrm('ln2', mlpOut, w.ln2W!, w.ln2B) : mlpOut;
    residPost = cfg.parallelAttnMlp ? g.op('Add', [g.op('Add', [residIn, attnContribution]), mlpContribution]) : g.op('Add', [mlpIn, mlpContribution]);
  }
  g.output('resid_post', hp('hook_resid_post', residPost), DataType.FLOAT, v.gather ? [1, 'out', D] : [B, P, D]);
}
