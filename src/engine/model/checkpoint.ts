import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Architecture } from '../architectures/architecture';
import { parseModelConfig } from '../architectures/registry';
import type { Tensor32 } from '../tensor';
import { readJsonFile } from '../../common/fileRead';
import { UserError } from '../../common/userError';
import { formatBytes, type ModelConfig, modelMemoryLimit } from './config';
import { MODEL_CONFIG, SAFETENSORS_INDEX } from './modelFiles';
import { readPthStateDict } from './pth';
import { readSafetensors, readSafetensorsHeader, type TensorHeader } from './safetensors';
import { type ModelWeights, modelParamCount } from './weights';

export interface LoadedCheckpoint {
  readonly architecture: Architecture;
  readonly config: ModelConfig;
  readonly weights: ModelWeights;
}

/** A checkpoint folder's config.json, its family and the validated config (before any weight is read). */
export function readCheckpointConfig(dir: string): { architecture: Architecture; config: Omit<ModelConfig, 'weightsDtype'>; configPath: string } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UserError(`model folder ${dir} does not exist; give a folder with config.json and the model's weights`);
  }
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) {
    throw new UserError(`${configPath} does not exist; a checkpoint folder needs config.json and model.safetensors (Hugging Face format)`);
  }
  return { ...parseModelConfig(readJsonFile(configPath, MODEL_CONFIG), configPath), configPath };
}

/** One tensor's place: the file it is in and its name there (with any export prefix). */
interface Located {
  readonly file: string;
  readonly stored: string;
}

/**
 * The safetensors files of a checkpoint: model.safetensors, or the shards model.safetensors.index.json
 * names (Hugging Face's layout for checkpoints above a few GB).
 */
function safetensorsFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (!existsSync(indexPath)) {
    throw new UserError(`${single} does not exist; a checkpoint folder needs config.json and model.safetensors (or model.safetensors.index.json and its shards)`);
  }
  const index = readJsonFile(indexPath, SAFETENSORS_INDEX);
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new UserError(`${indexPath} has no 'weight_map' object; it is not a Hugging Face safetensors index`);
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(map)) {
    // Shard names come from a file: only plain names inside the folder are accepted.
    if (typeof file !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$/.test(file)) {
      throw new UserError(`${indexPath} maps '${name}' to ${JSON.stringify(file)}; shard names must be plain *.safetensors file names in the same folder`);
    }
    files.add(file);
  }
  return [...files].sort().map((f) => {
    const p = join(dir, f);
    if (!existsSync(p)) throw new UserError(`shard ${p}, named in ${indexPath}, does not exist; the download is incomplete`);
    return p;
  });
}

/** The TransformerLens-native state dict: `model_final.pth`, or the folder's only `*.pth`. */
function pthFile(dir: string): string {
  const preferred = join(dir, 'model_final.pth');
  if (existsSync(preferred)) return preferred;
  const found = readdirSync(dir).filter((n) => n.endsWith('.pth'));
  if (found.length === 1) return join(dir, found[0]!);
  throw new UserError(
    found.length === 0
      ? `${dir} has no .pth state dict; a TransformerLens checkpoint folder needs config.json and model_final.pth`
      : `${dir} has several .pth files (${found.join(', ')}); keep the one to load, or name it model_final.pth`,
  );
}

/** The dtype the stored weights share, or a list when they mix (a half-precision model with float32 norms). */
function storedDtype(dtypes: Iterable<string>): string {
  const counts = new Map<string, number>();
  for (const d of dtypes) counts.set(d, (counts.get(d) ?? 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]).map(([d]) => d);
  return sorted.length === 1 ? sorted[0]! : `mixed (${sorted.join(', ')})`;
}

/**
 * Loads a checkpoint folder of any registered family: config.json, then every tensor's dtype and shape
 * checked against the config from the file headers (a file that lies is refused before its data costs
 * memory), then only the tensors the family reads, converted to float32 and to the engine's layout.
 */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const { architecture, config: parsed, configPath } = readCheckpointConfig(dir);
  const params = modelParamCount({ ...parsed, weightsDtype: 'F32' });
  const need = params * 4;
  const limit = modelMemoryLimit();
  if (need > limit.bytes) {
    throw new UserError(
      `the model in ${dir} needs ${formatBytes(need)} for its float32 weights (${params} parameters, from ${configPath}), more than ${limit.what}; use a smaller model`,
    );
  }
  const plan = architecture.tensors({ ...parsed, weightsDtype: 'F32' });
  const prefixes = architecture.namePrefixes;
  const bare = (n: string) => n.slice(prefixes.find((p) => n.startsWith(p))?.length ?? 0);
  const wanted = (n: string) => plan.required.has(bare(n)) || plan.optional.has(bare(n));

  const sources: { file: string; header: TensorHeader; read: (keep: (name: string) => boolean) => Map<string, Tensor32> }[] = [];
  if (architecture.weightFormat === 'pth') {
    const file = pthFile(dir);
    const dict = readPthStateDict(file);
    sources.push({ file, header: dict.header, read: (keep) => dict.read(keep) });
  } else {
    for (const file of safetensorsFiles(dir)) {
      sources.push({ file, header: readSafetensorsHeader(file), read: (keep) => readSafetensors(file, { skip: (n) => !keep(n) }) });
    }
  }

  // Every header is checked before any data is read, in the family's order (blocks first: the first error
  // reported is the first tensor a reader of the config would look at). A name found under several
  // prefixes is checked in each place and read from the bare one.
  const found = new Map<string, (Located & { shape: readonly number[]; dtype: string })[]>();
  for (const { file, header } of sources) {
    for (const [stored, entry] of header) {
      if (!wanted(stored)) continue;
      const name = bare(stored);
      found.set(name, [...(found.get(name) ?? []), { file, stored, ...entry }]);
    }
  }
  const located = new Map<string, Located>();
  const dtypes: string[] = [];
  for (const [name, shape] of [...plan.required, ...plan.optional]) {
    const places = found.get(name) ?? [];
    if (places.length === 0 && plan.required.has(name)) {
      throw new UserError(
        `tensor '${name}' is missing from ${sources.map((s) => s.file).join(', ')}; the checkpoint is incomplete or not a ${architecture.label} model matching ${configPath}`,
      );
    }
    for (const at of places) {
      if (at.shape.length !== shape.length || at.shape.some((d, i) => d !== shape[i])) {
        throw new UserError(
          `tensor '${name}' in ${at.file} has shape [${at.shape.join(', ')}], expected [${shape.join(', ')}] from ${configPath}; the weights don't match the config`,
        );
      }
      if (!located.has(name) || at.stored === name) located.set(name, at);
      dtypes.push(at.dtype);
    }
  }
  const tensors = new Map<string, Tensor32>();
  for (const { file, read } of sources) {
    const mine = new Set([...located].filter(([, at]) => at.file === file).map(([, at]) => at.stored));
    if (mine.size === 0) continue;
    for (const [stored, t] of read((n) => mine.has(n))) tensors.set(bare(stored), t);
  }
  const config: ModelConfig = { ...parsed, weightsDtype: storedDtype(dtypes) };
  // Each tensor is handed over once and forgotten here, so the stored copy of one a family converts (a
  // transpose) can be freed at once: loading then peaks near one copy of the weights, not two.
  const take = (name: string) => {
    const t = tensors.get(name);
    tensors.delete(name);
    return t;
  };
  return { architecture, config, weights: architecture.assemble(config, take) };
}
