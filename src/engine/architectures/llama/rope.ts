import { UserError } from '../../../common/userError';
import type { ConfigFields } from '../../model/configFields';

/**
 * Rotary inverse frequencies of a Llama-style config, as Hugging Face's rope init functions compute them
 * (modeling_rope_utils: the default, 'linear' and 'llama3' types), in float64 where Hugging Face rounds to
 * float32 (a relative difference of about 1e-7). The scaling is read from `rope_scaling`, or from
 * `rope_parameters` as transformers 5 writes it (which also holds rope_theta). Types whose frequencies
 * depend on the sequence length or change the attention scale (dynamic, yarn, longrope) are refused.
 */
export function ropeInverseFrequencies(f: ConfigFields, dim: number, thetaFallback = 10000): number[] {
  const params = f.object('rope_parameters');
  const theta = f.has('rope_theta') ? f.num('rope_theta', 1, Infinity) : (params?.num('rope_theta', 1, Infinity, thetaFallback) ?? thetaFallback);
  return scaledInverseFrequencies(theta, f.object('rope_scaling') ?? params, dim);
}

/**
 * The frequencies of base `theta` with `scaling` applied: a rope_scaling or rope_parameters object (or one
 * layer type's entry of Gemma 3's rope_parameters), or none.
 */
export function scaledInverseFrequencies(theta: number, scaling: ConfigFields | undefined, dim: number): number[] {
  const base = Array.from({ length: dim / 2 }, (_, i) => 1 / theta ** ((2 * i) / dim));
  if (!scaling) return base;
  const key = scaling.has('rope_type') ? 'rope_type' : 'type';
  const type = scaling.str(key, 'default');
  switch (type) {
    case 'default':
      return base;
    case 'linear': {
      const factor = scaling.num('factor', 1e-9, Infinity);
      return base.map((v) => v / factor);
    }
    case 'llama3': {
      const factor = scaling.num('factor', 1e-9, Infinity);
      const low = scaling.num('low_freq_factor', 0, Infinity);
      const high = scaling.num('high_freq_factor', 0, Infinity);
      const oldContext = scaling.int('original_max_position_embeddings', 1 << 30);
      if (!(high > low)) scaling.fail('high_freq_factor', `it must be above low_freq_factor (${low}); fix the config`);
      const lowFreqWavelen = oldContext / low;
      const highFreqWavelen = oldContext / high;
      return base.map((v) => {
        const wavelen = (2 * Math.PI) / v;
        // Short wavelengths keep their frequency, long ones are divided by the factor, and those between
        // are interpolated (both bounds belong to the interpolated band, as in Hugging Face's masks).
        if (wavelen < highFreqWavelen) return v;
        if (wavelen > lowFreqWavelen) return v / factor;
        const smooth = (oldContext / wavelen - low) / (high - low);
        return ((1 - smooth) * v) / factor + smooth * v;
      });
    }
    default:
      throw new UserError(
        `'${scaling.keyPrefix}${key}' in ${scaling.file} is '${type}'; PatchLens computes rotary embeddings with no scaling or with 'linear' or 'llama3' scaling, not '${type}' (its frequencies or attention scale depend on the sequence length) — use a checkpoint without it`,
      );
  }
}
