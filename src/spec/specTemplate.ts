/**
 * The text of a new `.patch.json` ("PatchLens: New Patch File"). It is JSON with comments: VS Code
 * edits .patch.json as jsonc, and parseSpecText accepts comments and trailing commas. It must stay
 * a valid spec (a unit test parses it).
 */
export const NEW_SPEC_TEMPLATE = `// PatchLens activation-patching spec. Each activation of the clean run is copied, one at a time,
// into the corrupted run; the metric says how much of the clean behaviour that one patch restores.
{
  // Name of the run and of its result file (default: this file's name without .patch.json).
  "name": "my-experiment",

  // What this experiment tests (free text, optional).
  "description": "Which components move the answer from ' Alice' to ' Bob'?",

  // A Hugging Face hub id (gpt2, meta-llama/Llama-3.2-1B, Qwen/Qwen2.5-0.5B, ...), a built-in model
  // (induction-2l), or a checkpoint folder (config.json + model.safetensors) relative to this file.
  "model": "gpt2",

  // Prepend the model's BOS token to text prompts (default: the model's, as TransformerLens: true,
  // false for Pythia, Qwen2 and Qwen3). Prompts given as token ids (clean_ids / corrupted_ids) are always used as given.
  "prepend_bos": true,

  // logit_diff: logit(answer) - logit(wrong) at the last token, mean over pairs.
  // normalized_logit_diff: 1 = clean behaviour restored, 0 = no effect.
  // answer_logprob, answer_prob: of the answer at the last token (or of "targets").
  // kl_divergence: from the clean run's next-token distribution.
  "metric": "logit_diff",

  // TransformerLens get_act_patch_* sweeps; each gives one heatmap.
  // resid_pre/mid/post, attn_out, mlp_out: [layer, pos]. attn_head_*_all_pos: [layer, head].
  // attn_head_*_by_pos: [layer, pos, head]. block_every, attn_head_all_pos_every, attn_head_by_pos_every: stacked.
  "sweeps": ["resid_pre", "attn_head_out_all_pos"],

  // Prompt pairs. Within a pair, clean and corrupted must have the same number of tokens: change a
  // fact by swapping a word for another of the same length (a name for a name), never by removing it.
  // Pairs may differ in length from each other. Instead of "pairs", a spec may have
  // "induction": {"seed": 0, "length": 20, "batch": 4, "corrupted": "AB"} (TransformerLens's demo).
  "pairs": [
    {
      // The prompt on which the model behaves as you want to explain.
      "clean": "When Alice and Bob went to the park, Bob gave a ball to",
      // The same prompt with one fact changed.
      "corrupted": "When Alice and Bob went to the park, Alice gave a ball to",
      // The clean prompt's next token: exactly one token, usually with its leading space.
      "answer": " Alice",
      // The competing token (usually the corrupted prompt's answer).
      "wrong": " Bob",
    },
  ],

  // Colours (optional): white at the corrupted baseline (no effect), full red at the clean one.
  // center: "corrupted" | "zero" | a number; zmin, zmax: "auto" | "clean" | "corrupted" | a number.
  // The notebook's normalized logit difference: {"zmin": -1, "zmax": 1}.
  "plot": { "center": "corrupted", "zmin": "auto", "zmax": "auto" },
}
`;
