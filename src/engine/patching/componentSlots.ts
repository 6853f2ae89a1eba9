import { type Component, componentName, parseComponent, COMPONENT_HELP } from '../../protocol/components';
import type { ResolvedSpec } from '../../protocol/spec';
import { UserError } from '../../common/userError';
import { type BlockHook, blockHooks, hookInfo } from '../hooks';
import type { ModelConfig } from '../model/config';
import type { PatchSlot } from './sweeps';

const HEAD_HOOKS: Record<string, BlockHook> = { z: 'attn.hook_z', q: 'attn.hook_q', k: 'attn.hook_k', v: 'attn.hook_v' };

/** The hook a component overwrites. */
export const componentHook = (c: Component): BlockHook => (c.head === undefined ? `hook_${c.part}` : HEAD_HOOKS[c.part]!);

/**
 * The slot a named component patches on this model and these pairs: every position, one position of
 * every pair, or a label's positions in each pair. Whatever the model or the pairs do not have is a
 * UserError that says where the name was written (`where`) and what the model has.
 */
export function componentSlot(name: string, cfg: ModelConfig, spec: Pick<ResolvedSpec, 'pairs' | 'labels'>, where: string): PatchSlot {
  const c = parseComponent(name);
  if (!c) throw new UserError(`${where}: ${JSON.stringify(name)} is not a component; ${COMPONENT_HELP}`);
  const hook = componentHook(c);
  const shown = componentName(c);
  if (c.layer >= cfg.nLayers) throw new UserError(`${where}: ${shown} names layer ${c.layer}, but the model has layers 0…${cfg.nLayers - 1}`);
  if (!blockHooks(cfg).has(hook)) {
    throw new UserError(`${where}: ${shown} patches blocks.${c.layer}.${hook}, which this ${cfg.architecture} model does not have${cfg.attnOnly ? ' (it is attention-only)' : ''}`);
  }
  const info = hookInfo(cfg, hook);
  if (c.head !== undefined && c.head >= info.heads) {
    const kv = info.heads !== cfg.nHeads;
    throw new UserError(
      `${where}: ${shown} names head ${c.head}, but the model has ${kv ? 'key/value ' : ''}heads 0…${info.heads - 1}${kv ? ' (k and v count key/value heads)' : ''}`,
    );
  }
  const slot = { layer: c.layer, hook, layout: info.layout, ...(c.head !== undefined ? { head: c.head } : {}) };
  if (c.at === undefined) return slot;
  if (typeof c.at === 'string') {
    const label = spec.labels?.indexOf(c.at) ?? -1;
    if (label < 0) {
      throw new UserError(
        `${where}: ${shown} names the label ${c.at}, but ${spec.labels ? `the pairs label ${spec.labels.join(', ')}` : 'the pairs name no positions'}; use one of those, or a position`,
      );
    }
    return { ...slot, label, at: spec.pairs.map((p) => p.labels![c.at as string]!) };
  }
  const shortest = Math.min(...spec.pairs.map((p) => p.clean.length));
  if (c.at >= shortest) {
    throw new UserError(
      `${where}: ${shown} names position ${c.at}, but the shortest pair has ${shortest} tokens (positions 0…${shortest - 1}); label the position in each pair and write @LABEL instead`,
    );
  }
  return { ...slot, pos: c.at };
}
