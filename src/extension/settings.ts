/**
 * The `patchlens.*` settings as plain values. Pure: the caller passes a getter (vscode's
 * WorkspaceConfiguration.get in the extension, a map in tests), so the defaults and checks are testable.
 */
import { isAbsolute, join } from 'node:path';
import { DEFAULT_MEMORY_BUDGET_MIB, DEVICE_SETTINGS, type DeviceSetting, type EngineSettings, PATCHING_MODES, type PatchingMode } from '../protocol/engineRpc';
import { METHOD_NAMES, type MethodName, SWEEP_NAMES, type SweepName } from '../protocol/spec';

export interface PatchLensSettings {
  /** Default model for selections and for specs that name none. */
  readonly model?: string;
  readonly device: DeviceSetting;
  readonly cacheDir?: string;
  readonly memoryBudgetMiB: number;
  readonly hubEndpoint?: string;
  /** Relative to each workspace folder, or absolute. */
  readonly resultsFolder: string;
  readonly mode: PatchingMode;
  /** Overrides every spec's method; absent ('spec'): each spec's own, exact when it names none. */
  readonly method?: MethodName;
  /** Sweeps a selection runs (a selection has no spec to name them). */
  readonly selectionSweeps: SweepName[];
}

export const DEFAULT_RESULTS_FOLDER = '.patchlens/runs';
export const DEFAULT_SELECTION_SWEEPS: SweepName[] = ['resid_pre', 'attn_head_out_all_pos', 'block_every'];

const nonEmpty = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);

/** Reads every setting; a wrong value (hand-edited settings.json) falls back to its default instead of failing a run. */
export function parseSettings(get: (key: string) => unknown): PatchLensSettings {
  const device = get('device');
  const mode = get('mode');
  const method = get('method');
  const budget = get('memoryBudgetMiB');
  const sweeps = get('selectionSweeps');
  const validSweeps = Array.isArray(sweeps) ? [...new Set(sweeps.filter((s): s is SweepName => (SWEEP_NAMES as readonly unknown[]).includes(s)))] : [];
  const model = nonEmpty(get('model'));
  const cacheDir = nonEmpty(get('cacheDir'));
  const hubEndpoint = nonEmpty(get('hubEndpoint'));
  return {
    ...(model !== undefined ? { model } : {}),
    device: (DEVICE_SETTINGS as readonly unknown[]).includes(device) ? (device as DeviceSetting) : 'auto',
    ...(cacheDir !== undefined ? { cacheDir } : {}),
    memoryBudgetMiB: typeof budget === 'number' && Number.isFinite(budget) && budget > 0 ? budget : DEFAULT_MEMORY_BUDGET_MIB,
    ...(hubEndpoint !== undefined ? { hubEndpoint } : {}),
    resultsFolder: nonEmpty(get('resultsFolder')) ?? DEFAULT_RESULTS_FOLDER,
    mode: (PATCHING_MODES as readonly unknown[]).includes(mode) ? (mode as PatchingMode) : 'fast',
    ...((METHOD_NAMES as readonly unknown[]).includes(method) ? { method: method as MethodName } : {}),
    selectionSweeps: validSweeps.length > 0 ? validSweeps : DEFAULT_SELECTION_SWEEPS,
  };
}

/** What the engine needs of the settings, with a relative cache folder anchored at the workspace. */
export function engineSettings(s: PatchLensSettings, workspaceRoot: string | undefined): EngineSettings {
  const cacheDir = s.cacheDir === undefined ? undefined : isAbsolute(s.cacheDir) || !workspaceRoot ? s.cacheDir : join(workspaceRoot, s.cacheDir);
  return {
    device: s.device,
    mode: s.mode,
    ...(s.method !== undefined ? { method: s.method } : {}),
    memoryBudgetMiB: s.memoryBudgetMiB,
    ...(s.hubEndpoint !== undefined ? { hubEndpoint: s.hubEndpoint } : {}),
    ...(cacheDir !== undefined ? { cacheDir } : {}),
  };
}

/** The results folder for a run whose spec or document lives in `workspaceRoot` (none: beside the spec). */
export function resultsFolderFor(s: PatchLensSettings, workspaceRoot: string | undefined, specDir: string): string {
  if (isAbsolute(s.resultsFolder)) return s.resultsFolder;
  return join(workspaceRoot ?? specDir, s.resultsFolder);
}
