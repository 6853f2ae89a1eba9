import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { jsonErrorReason, UserError } from '../../common/userError';
import { formatBytes, modelMemoryLimit, modelParamCount, parseGpt2Config, type ModelConfig } from './config';
import { readSafetensors } from './safetensors';
import type { BlockWeights, ModelWeights } from './weights';

function requireFile(dir: string, name: string): string {
  const p = join(dir, name);
  if (!existsSync(p)) {
    throw new UserError(`${p} does not exist; a checkpoint folder needs config.json and model.safetensors (Hugging Face format)`);
  }
  return p;
}

const BLOCK_TENSORS = [
  'ln_1.weight',
  'ln_1.bias',
  'attn.c_attn.weight',
  'attn.c_attn.bias',
  'attn.c_proj.weight',
  'attn.c_proj.bias',
  'ln_2.weight',
  'ln_2.bias',
  'mlp.c_fc.weight',
  'mlp.c_fc.bias',
  'mlp.c_proj.weight',
  'mlp.c_proj.bias',
] as const;

/** Every tensor of a GPT-2 with its shape from the config, blocks first (the order errors are found in). */
function expectedShapes(cfg: ModelConfig): Map<string, readonly number[]> {
  const { dModel: D, dMlp: M, dVocab: V, nCtx: C } = cfg;
  const block: Record<(typeof BLOCK_TENSORS)[number], number[]> = {
    'ln_1.weight': [D],
    'ln_1.bias': [D],
    'attn.c_attn.weight': [D, 3 * D],
    'attn.c_attn.bias': [3 * D],
    'attn.c_proj.weight': [D, D],
    'attn.c_proj.bias': [D],
    'ln_2.weight': [D],
    'ln_2.bias': [D],
    'mlp.c_fc.weight': [D, M],
    'mlp.c_fc.bias': [M],
    'mlp.c_proj.weight': [M, D],
    'mlp.c_proj.bias': [D],
  };
  const shapes = new Map<string, readonly number[]>();
  for (let l = 0; l < cfg.nLayers; l++) for (const n of BLOCK_TENSORS) shapes.set(`h.${l}.${n}`, block[n]);
  shapes.set('wte.weight', [V, D]);
  shapes.set('wpe.weight', [C, D]);
  shapes.set('ln_f.weight', [D]);
  shapes.set('ln_f.bias', [D]);
  shapes.set('lm_head.weight', [V, D]);
  return shapes;
}

// lm_head is absent when the unembedding is tied to wte (GPT-2 ties it).
const OPTIONAL = new Set(['lm_head.weight']);
const PREFIX = 'transformer.';

/** Loads a Hugging Face GPT-2 checkpoint folder (config.json + model.safetensors). */
export function loadGpt2Checkpoint(dir: string): { config: ModelConfig; weights: ModelWeights } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError(`model folder ${dir} does not exist; give a folder with config.json and model.safetensors`);
  }
  const configPath = requireFile(dir, 'config.json');
  const stPath = requireFile(dir, 'model.safetensors');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw new UserError(`${configPath} is not valid JSON (${jsonErrorReason(e)}); fix or re-download it`);
  }
  // Config validation (including the size bound) happens before the weights file is read.
  const config = parseGpt2Config(json, configPath);
  const need = modelParamCount(config) * 4;
  const limit = modelMemoryLimit();
  if (need > limit.bytes) {
    throw new UserError(
      `the model in ${dir} needs ${formatBytes(need)} for its float32 weights (${modelParamCount(config)} parameters, from ${configPath}), more than ${limit.what}; use a smaller model`,
    );
  }

  // Every shape is checked against the config from the header, before any data is read: a header
  // that lies about a tensor's size is refused before it costs memory. Only these tensors are read;
  // anything else in the file (causal-mask buffers some exports include, a value head) is skipped.
  // Some exports of GPT2LMHeadModel prefix every name with 'transformer.', others don't.
  const shapes = expectedShapes(config);
  const bare = (n: string) => (n.startsWith(PREFIX) ? n.slice(PREFIX.length) : n);
  const tensors = readSafetensors(stPath, {
    skip: (n) => !shapes.has(bare(n)),
    checkHeader: (entries) => {
      for (const [name, shape] of shapes) {
        const found = [name, PREFIX + name].filter((n) => entries.has(n));
        if (found.length === 0 && !OPTIONAL.has(name)) {
          throw new UserError(`tensor '${name}' is missing from ${stPath}; the checkpoint is incomplete or not a GPT-2 model matching ${configPath}`);
        }
        for (const n of found) {
          const got = entries.get(n)!.shape;
          if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
            throw new UserError(
              `tensor '${name}' in ${stPath} has shape [${got.join(', ')}], expected [${shape.join(', ')}] from ${configPath}; the weights don't match the config`,
            );
          }
        }
      }
    },
  });
  const get = (name: string) => tensors.get(name) ?? tensors.get(PREFIX + name);
  const req = (name: string) => get(name)!;

  const blocks: BlockWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const p = `h.${l}.`;
    blocks.push({
      ln1W: req(`${p}ln_1.weight`),
      ln1B: req(`${p}ln_1.bias`),
      wQkv: req(`${p}attn.c_attn.weight`),
      bQkv: req(`${p}attn.c_attn.bias`),
      wO: req(`${p}attn.c_proj.weight`),
      bO: req(`${p}attn.c_proj.bias`),
      ln2W: req(`${p}ln_2.weight`),
      ln2B: req(`${p}ln_2.bias`),
      wIn: req(`${p}mlp.c_fc.weight`),
      bIn: req(`${p}mlp.c_fc.bias`),
      wOut: req(`${p}mlp.c_proj.weight`),
      bOut: req(`${p}mlp.c_proj.bias`),
    });
  }
  const wte = req('wte.weight');
  const weights: ModelWeights = {
    wte,
    wpe: req('wpe.weight'),
    blocks,
    lnfW: req('ln_f.weight'),
    lnfB: req('ln_f.bias'),
    unembed: get('lm_head.weight') ?? wte,
  };
  return { config, weights };
}
