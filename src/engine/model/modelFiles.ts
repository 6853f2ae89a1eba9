/**
 * The files of a checkpoint PatchLens reads whole, and the most each may hold: the read limit for a
 * local folder and the download cap for the hub, where a server that never stops sending (or announces
 * nothing) would otherwise fill the disk. Each is several times the largest such file on the hub.
 */
import type { FileRole } from '../../common/fileRead';

const MiB = 1024 * 1024;
const fix = 'fix or re-download it';

export const MODEL_CONFIG: FileRole = { noun: 'model config', maxBytes: 4 * MiB, fix };
export const TOKENIZER_JSON: FileRole = { noun: 'tokenizer', maxBytes: 256 * MiB, fix };
export const TOKENIZER_CONFIG: FileRole = { noun: 'tokenizer config', maxBytes: 16 * MiB, fix };
export const SAFETENSORS_INDEX: FileRole = { noun: 'safetensors index', maxBytes: 64 * MiB, fix };
/** Weights are read in parts, never whole: only their kind is checked up front. */
export const WEIGHTS_FILE = { noun: 'weights file', fix: 're-export or re-download it' } as const;

/** The roles by file name, for the hub's download caps. */
export const SMALL_FILES: Readonly<Record<string, FileRole>> = {
  'config.json': MODEL_CONFIG,
  'tokenizer.json': TOKENIZER_JSON,
  'tokenizer_config.json': TOKENIZER_CONFIG,
  'model.safetensors.index.json': SAFETENSORS_INDEX,
};
