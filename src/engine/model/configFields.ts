import { UserError } from '../../common/userError';

// Bounds far above any real model; they exist so a corrupt or hostile config.json is rejected with a
// message instead of an allocation that takes the machine down.
export const CONFIG_LIMITS = {
  dModel: 65536,
  layers: 512,
  heads: 65536,
  vocab: 10_000_000,
  ctx: 1 << 24,
  dMlp: 1 << 20,
} as const;

const show = (v: unknown): string => {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/**
 * Typed, checked reads of a config.json's fields: every bad value becomes one message naming the field,
 * the file and what it must be. `family` names the kind of config in those messages ('a GPT-2 config.json').
 */
export class ConfigFields {
  constructor(
    readonly json: Readonly<Record<string, unknown>>,
    readonly file: string,
    readonly family: string,
    /** Where this object sits in the file ('rope_scaling.'), for messages about a nested object's fields. */
    readonly keyPrefix = '',
  ) {}

  has(key: string): boolean {
    return this.json[key] !== undefined && this.json[key] !== null;
  }

  /** The first of `keys` present (a family's configs name some fields two ways). */
  private pick(keys: readonly string[]): { key: string; value: unknown } | undefined {
    for (const key of keys) if (this.has(key)) return { key, value: this.json[key] };
    return undefined;
  }

  fail(key: string, what: string): never {
    throw new UserError(`'${this.keyPrefix}${key}' in ${this.file} is ${show(this.json[key])}; ${what}`);
  }

  /** A nested object's fields (rope_scaling), or undefined when it is absent or null. */
  object(key: string): ConfigFields | undefined {
    if (!this.has(key)) return undefined;
    const v = this.json[key];
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(key, 'it must be an object');
    return new ConfigFields(v as Record<string, unknown>, this.file, this.family, `${this.keyPrefix}${key}.`);
  }

  /** A string, or `fallback` when absent. */
  str(key: string, fallback: string): string {
    if (!this.has(key)) return fallback;
    const v = this.json[key];
    if (typeof v !== 'string') this.fail(key, 'it must be a string');
    return v;
  }

  /** A positive integer up to `max`; `fallback` when absent, or an error that says the field is needed. */
  int(keys: string | readonly string[], max: number, fallback?: number): number {
    const all = typeof keys === 'string' ? [keys] : keys;
    const found = this.pick(all);
    if (!found) {
      if (fallback !== undefined) return fallback;
      throw new UserError(`${this.file} has no '${this.keyPrefix}${all[0]}'; ${this.family} needs it (a positive integer)`);
    }
    const v = found.value;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) this.fail(found.key, 'it must be a positive integer');
    if (v > max) this.fail(found.key, `above the limit ${max}; the config is corrupt or not ${this.family}`);
    return v;
  }

  /** A finite number in [min, max). */
  num(keys: string | readonly string[], min: number, max: number, fallback?: number): number {
    const all = typeof keys === 'string' ? [keys] : keys;
    const found = this.pick(all);
    if (!found) {
      if (fallback !== undefined) return fallback;
      throw new UserError(`${this.file} has no '${this.keyPrefix}${all[0]}'; ${this.family} needs it (a number)`);
    }
    const v = found.value;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v >= max) this.fail(found.key, `it must be a number in [${min}, ${max})`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    if (!this.has(key)) return fallback;
    const v = this.json[key];
    if (typeof v !== 'boolean') this.fail(key, 'it must be true or false');
    return v;
  }

  /** One of `allowed`, with the spelling variants a family accepts mapped by `aliases`. */
  choice<T extends string>(key: string, allowed: Readonly<Record<string, T>>, fallback?: T): T {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      throw new UserError(`${this.file} has no '${this.keyPrefix}${key}'; ${this.family} needs it (one of ${Object.keys(allowed).join(', ')})`);
    }
    const v = this.json[key];
    if (typeof v === 'string' && Object.hasOwn(allowed, v)) return allowed[v]!;
    this.fail(key, `PatchLens supports ${Object.keys(allowed).join(', ')}`);
  }

  /** A token id in [0, vocab), or `fallback` when absent. */
  tokenId(key: string, vocab: number, fallback: number): number {
    if (!this.has(key)) return fallback;
    const v = this.json[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocab) this.fail(key, `it must be a token id in [0, ${vocab})`);
    return v;
  }
}
