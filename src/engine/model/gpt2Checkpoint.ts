import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor32 } from '../tensor';
import { UserError } from '../userError';
import { parseGpt2Config, type ModelConfig } from './config';
import { readSafetensors } from './safetensors';
import type { BlockWeights, ModelWeights } from './weights';

function requireFile(dir: string, name: string): string {
  const p = join(dir, name);
  if (!existsSync(p)) {
    throw new UserError(`${p} does not exist; a checkpoint folder needs config.json and model.safetensors (Hugging Face format)`);
  }
  return p;
}

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
    throw new UserError(`${configPath} is not valid JSON (${(e as Error).message}); fix or re-download it`);
  }
  // Config validation (including the size bound) happens before the weights file is read.
  const config = parseGpt2Config(json, configPath);
  // The causal-mask buffers some exports include are not weights (and may be stored as BOOL/U8).
  const tensors = readSafetensors(stPath, { skip: (n) => /\.attn\.(bias|masked_bias)$/.test(n) });

  // Some exports of GPT2LMHeadModel prefix every name with 'transformer.', others don't.
  const get = (name: string, shape: readonly number[], optional = false): Tensor32 | undefined => {
    const t = tensors.get(name) ?? tensors.get(`transformer.${name}`);
    if (!t) {
      if (optional) return undefined;
      throw new UserError(`tensor '${name}' is missing from ${stPath}; the checkpoint is incomplete or not a GPT-2 model matching ${configPath}`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new UserError(
        `tensor '${name}' in ${stPath} has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}] from ${configPath}; the weights don't match the config`,
      );
    }
    return t;
  };
  const req = (name: string, shape: readonly number[]): Tensor32 => get(name, shape)!;

  const { dModel: D, dMlp: M, dVocab: V, nCtx: C } = config;
  const blocks: BlockWeights[] = [];
  for (let l = 0; l < config.nLayers; l++) {
    const p = `h.${l}.`;
    blocks.push({
      ln1W: req(`${p}ln_1.weight`, [D]),
      ln1B: req(`${p}ln_1.bias`, [D]),
      wQkv: req(`${p}attn.c_attn.weight`, [D, 3 * D]),
      bQkv: req(`${p}attn.c_attn.bias`, [3 * D]),
      wO: req(`${p}attn.c_proj.weight`, [D, D]),
      bO: req(`${p}attn.c_proj.bias`, [D]),
      ln2W: req(`${p}ln_2.weight`, [D]),
      ln2B: req(`${p}ln_2.bias`, [D]),
      wIn: req(`${p}mlp.c_fc.weight`, [D, M]),
      bIn: req(`${p}mlp.c_fc.bias`, [M]),
      wOut: req(`${p}mlp.c_proj.weight`, [M, D]),
      bOut: req(`${p}mlp.c_proj.bias`, [D]),
    });
  }
  const wte = req('wte.weight', [V, D]);
  const weights: ModelWeights = {
    wte,
    wpe: req('wpe.weight', [C, D]),
    blocks,
    lnfW: req('ln_f.weight', [D]),
    lnfB: req('ln_f.bias', [D]),
    // lm_head is never prefixed with 'transformer.'; get() also tries the prefix, which is harmless.
    unembed: get('lm_head.weight', [V, D], true) ?? wte,
  };
  return { config, weights };
}
