/**
 * Checking a parsed `.patch.json` value against schemas/patch.schema.json (ajv) and the rules the
 * schema cannot state well, with ajv's errors rewritten as one message that names the field, the
 * problem and the fix, pointing at the most relevant place in the text.
 */
import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import schemaJson from '../../schemas/patch.schema.json';
import { ATP_METHODS, INDUCTION_METRICS, LOGIT_DIFF_METRICS, PATH_RECEIVER_PATTERN, type PatchSpec, plotProblem, RESID_FINAL, TARGET_METRICS } from '../protocol/spec';
import { COMPONENT_HELP } from '../protocol/components';
import { locate, locateMany, type NodePos, pathKey } from './jsonc';
import { errorAt, formatPath, type PathSeg, quote, type TextInfo } from './specError';

let validators: { first: ValidateFunction; all: ValidateFunction } | undefined;

function getValidators(): { first: ValidateFunction; all: ValidateFunction } {
  if (!validators) {
    const make = (allErrors: boolean) => {
      const ajv = new Ajv({ allErrors, verbose: true, strictTypes: false });
      // VS Code's editor-only schema keywords: known, so strict mode still catches real typos.
      ajv.addVocabulary(['defaultSnippets', 'markdownDescription', 'enumDescriptions', 'markdownEnumDescriptions', 'allowComments', 'allowTrailingCommas']);
      return ajv.compile(schemaJson as object);
    };
    validators = { first: make(false), all: make(true) };
  }
  return validators;
}

/** Whether `value` has more than `limit` nodes (counted without recursion, stopping at the limit). */
function hasMoreNodes(value: unknown, limit: number): boolean {
  const stack: unknown[] = [value];
  let n = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (++n > limit) return true;
    if (Array.isArray(v)) for (const x of v) stack.push(x);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) stack.push(x);
  }
  return false;
}

// Collecting every error is what lets the message be the most relevant one, but it costs seconds on
// a file with a million bad ids; above this size the first error found is reported.
const ALL_ERRORS_MAX_NODES = 100_000;

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

function closest(word: string, allowed: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  const limit = Math.max(2, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    // The distance is at least the difference in length: skipping those keeps a megabyte-long
    // misspelling from costing seconds of edit-distance work per allowed name.
    if (Math.abs(w.length - a.length) > limit) continue;
    const d = editDistance(w, a.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = a;
    }
  }
  return best !== undefined && bestD <= limit ? best : undefined;
}

function didYouMean(word: unknown, allowed: readonly string[]): string {
  const c = typeof word === 'string' ? closest(word, allowed) : undefined;
  return c ? `did you mean ${quote(c)}? (allowed: ${allowed.join(', ')})` : `use one of: ${allowed.join(', ')}`;
}

function pointerToPath(pointer: string, data: unknown): PathSeg[] {
  if (pointer === '') return [];
  const path: PathSeg[] = [];
  let node = data;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const seg: PathSeg = Array.isArray(node) && /^\d+$/.test(key) ? Number(key) : key;
    path.push(seg);
    node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
  }
  return path;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${quote(v, 30)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v === 'number' ? 'the number' : ''} ${String(v)}`.trim();
}

const TYPE_HINTS: Record<string, string> = {
  clean: 'write the prompt as "text" (for token ids use clean_ids)',
  corrupted: 'write the prompt as "text" (for token ids use corrupted_ids)',
  clean_ids: 'write token ids as a list of integers, e.g. [50256, 464, 3290]',
  corrupted_ids: 'write token ids as a list of integers, e.g. [50256, 464, 3290]',
  answer: 'write the answer as text, e.g. " Alice" (or use answer_id for a token id)',
  wrong: 'write the wrong answer as text, e.g. " Bob" (or use wrong_id for a token id)',
  answer_id: 'write a token id, e.g. 14862 (or use answer for text)',
  wrong_id: 'write a token id, e.g. 5811 (or use wrong for text)',
  sweeps: 'write a list of sweep names, e.g. ["resid_pre", "attn_head_out_all_pos"]',
  pairs: 'write a list of pairs: [{"clean": "…", "corrupted": "…", "answer": "…", "wrong": "…"}]',
  induction: 'write an object: {"seed": 0, "corrupted": "AB"}',
  dataset: 'write the file name, e.g. "ioi.jsonl" (relative to this file)',
  direction: 'write "denoising" or "noising"',
  ablation: 'write "zero", "mean" or "mean_over_positions"',
  positions: 'write an object of named positions, e.g. {"IO": 2, "END": 14}',
  targets: 'write a list like [{"pos": 5, "token_id": 123}]',
  token_range: 'write [lo, hi], e.g. [100, 10000]',
  prepend_bos: 'write true or false',
  plot: 'write an object such as {"zmin": -1, "zmax": 1} (or remove "plot")',
  verify_top: 'write a whole number of indices to check, e.g. 10',
  patch_sets: 'write a list of sets, e.g. [{"name": "name movers", "components": ["L9H6", "L9H9"]}]',
  components: 'write a list of component names, e.g. ["L9H6", "L3.mlp_out@END"]',
};

const TYPE_NAMES: Record<string, string> = {
  string: 'a string in double quotes',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list [ … ]',
  object: 'an object { … }',
};

/** One direct (non-composite) ajv error as a message; `at` says where it points. */
function ajvMessage(err: ErrorObject, data: unknown): { path: PathSeg[]; useKey: boolean; message: string } {
  const path = pointerToPath(err.instancePath, data);
  const where = formatPath(path);
  const last = path[path.length - 1];
  const field = typeof last === 'string' ? last : typeof path[path.length - 2] === 'string' ? (path[path.length - 2] as string) : '';
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const allowed = Object.keys(((err.parentSchema as { properties?: object } | undefined)?.properties ?? {}) as object);
      const what = path.length === 0 ? `top-level key ${quote(key)}` : `key ${quote(key)} in ${where}`;
      return { path: [...path, key], useKey: true, message: `unknown ${what}; ${didYouMean(key, allowed)}` };
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      const noun = path[0] === 'sweeps' && path.length === 2 ? 'sweep' : where === 'metric' ? 'metric' : where === 'induction.corrupted' ? 'corruption pattern' : 'value';
      return {
        path,
        useKey: false,
        message: `unknown ${noun} ${typeof err.data === 'string' ? quote(err.data) : describeValue(err.data)} at ${where}; ${didYouMean(err.data, allowed)}`,
      };
    }
    case 'type': {
      const want = String(p.type);
      const isInt = want === 'integer' && typeof err.data === 'number';
      const hint = TYPE_HINTS[field] ?? (isInt ? 'write a whole number' : `write ${TYPE_NAMES[want] ?? want}`);
      return { path, useKey: false, message: `${where} must be ${TYPE_NAMES[want] ?? want}, not ${describeValue(err.data)}; ${hint}` };
    }
    case 'required': {
      const missing = String(p.missingProperty);
      const example: Record<string, string> = {
        metric: `"metric": one of ${(schemaJson.properties.metric.enum as string[]).join(', ')}`,
        sweeps: '"sweeps": ["resid_pre"]',
        seed: '"seed": 0',
        corrupted: '"corrupted": "AB" (or BA, BB, BC)',
        pos: '"pos": 5',
        token_id: '"token_id": 123',
      };
      const owner = path.length === 0 ? 'the spec' : where;
      return { path, useKey: false, message: `${owner} is missing ${quote(missing)}; add ${example[missing] ?? `"${missing}": …`}` };
    }
    case 'dependencies': {
      const has = String(p.property);
      const missing = String(p.missingProperty);
      const form = has.endsWith('_ids') ? 'token-id prompts' : 'text prompts';
      return {
        path: [...path, has],
        useKey: true,
        message: `${where} has ${quote(has)} but no ${quote(missing)}; ${form} come in pairs — add ${quote(missing)} (the ${missing.startsWith('clean') ? 'clean' : 'corrupted'} prompt)`,
      };
    }
    case 'minItems': {
      const what: Record<string, string> = {
        sweeps: 'list at least one sweep, e.g. ["resid_pre"]',
        pairs: 'add at least one pair {"clean": …, "corrupted": …}',
        targets: 'add a target {"pos": …, "token_id": …} or remove "targets"',
        token_range: 'write [lo, hi], e.g. [100, 10000]',
        patch_sets: 'add a set {"name": …, "components": […]} or remove "patch_sets"',
        components: 'name at least one component, e.g. ["L9H6"]',
      };
      const min = Number(p.limit);
      return { path, useKey: false, message: `${where} ${min <= 1 ? 'is empty' : `needs ${min} items`}; ${what[field] ?? 'add the missing items'}` };
    }
    case 'maxItems':
      return { path, useKey: false, message: `${where} has too many items (at most ${String(p.limit)}); ${field === 'token_range' ? 'write [lo, hi]' : 'remove the extra items'}` };
    case 'uniqueItems': {
      const i = Math.min(Number(p.i), Number(p.j));
      const j = Math.max(Number(p.i), Number(p.j));
      const dup = Array.isArray(err.data) ? err.data[j] : undefined;
      return {
        path: [...path, j],
        useKey: false,
        message: `${where} lists ${typeof dup === 'string' ? quote(dup) : 'a value'} twice (${where}[${i}] and ${where}[${j}]); remove one`,
      };
    }
    case 'minimum':
    case 'maximum': {
      const bound = `${err.keyword === 'minimum' ? '≥' : '≤'} ${String(p.limit)}`;
      const isId = field.endsWith('_id') || field.endsWith('_ids') || field === 'token_range';
      const hint =
        err.keyword === 'minimum' && isId ? 'token ids start at 0' : err.keyword === 'minimum' && field === 'pos' ? 'positions start at 0 (BOS included)' : `use a value ${bound}`;
      return { path, useKey: false, message: `${where} is ${String(err.data)}, but it must be ${bound}; ${hint}` };
    }
    case 'pattern':
    case 'propertyNames':
      if ((err as { propertyName?: string }).propertyName !== undefined || p.propertyName !== undefined) {
        const label = String((err as { propertyName?: string }).propertyName ?? p.propertyName);
        return {
          path: [...path, label],
          useKey: true,
          message: `${where} has the label ${quote(label)}; a label is a name of letters, digits and _ that does not start with a digit, e.g. "IO" or "S1"`,
        };
      }
      if (typeof err.data === 'string' && path.includes('components'))
        return { path, useKey: false, message: `${where} is ${quote(err.data)}, not a component; ${COMPONENT_HELP}` };
      if (typeof err.data === 'string' && path[0] === 'path_patching' && path[1] === 'senders') {
        return { path, useKey: false, message: `${where} is ${quote(err.data)}, not a sender; a sender is a head's output, LxHy, e.g. "L5H1"` };
      }
      return { path, useKey: false, message: `${where} ${err.message ?? 'is not valid'}` };
    case 'minLength':
      return {
        path,
        useKey: false,
        message: `${where} is an empty string; ${field === 'clean' || field === 'corrupted' ? 'write the prompt' : field === 'answer' || field === 'wrong' ? 'write one token of text, e.g. " Alice"' : 'write a value or remove the key'}`,
      };
    default:
      return { path, useKey: false, message: `${where} ${err.message ?? 'is not valid'}` };
  }
}

const LATE = new Set(['required', 'dependencies']);
const COMPOSITE = /\/(oneOf|anyOf|allOf|not|if|then|else)(\/|$)/;
function isComposite(err: ErrorObject): boolean {
  return COMPOSITE.test(err.schemaPath) || ['oneOf', 'anyOf', 'allOf', 'not', 'if'].includes(err.keyword);
}

/**
 * The rules the schema states with oneOf/not/if (which give poor messages), stated again as code so
 * that each broken one gets its own message. Also the rules a schema cannot state (lo < hi).
 */
function checkRules(spec: PatchSpec, fail: (path: PathSeg[], useKey: boolean, message: string) => never): void {
  const sources = (['pairs', 'dataset', 'induction'] as const).filter((k) => spec[k] !== undefined);
  if (sources.length > 1) {
    fail([sources[1]!], true, `the spec has both "${sources[0]}" and "${sources[1]}"; a spec takes its prompts from one of pairs, dataset and induction — remove the other`);
  }
  if (sources.length === 0) {
    fail([], false, 'the spec has no prompts; add "pairs": [{"clean": …, "corrupted": …, "answer": …, "wrong": …}], a "dataset": "pairs.jsonl" file, or an "induction" block');
  }
  if (spec.verify_top !== undefined && !ATP_METHODS.includes(spec.method ?? 'exact')) {
    fail(
      ['verify_top'],
      true,
      `verify_top checks attribution estimates, but the method is ${spec.method ?? 'exact (the default)'}; add "method": "atp" (or "atp_star"), or remove verify_top`,
    );
  }
  if (spec.patch_sets !== undefined && ATP_METHODS.includes(spec.method ?? 'exact')) {
    fail(['patch_sets'], true, `patch_sets are patched exactly, but the method is ${spec.method}; remove "method" (exact is the default), or run the sets in a spec of their own`);
  }
  if (spec.sweeps === undefined && spec.patch_sets === undefined && spec.path_patching === undefined) {
    fail([], false, 'the spec is missing \'sweeps\'; add "sweeps": ["resid_pre"] (or "patch_sets" to patch components together, or "path_patching" for path patching)');
  }
  checkPathPatching(spec, fail);
  const setNames = (spec.patch_sets ?? []).map((s) => s.name);
  setNames.forEach((name, i) => {
    const first = setNames.indexOf(name);
    if (first !== i) fail(['patch_sets', i, 'name'], false, `patch_sets[${first}] and patch_sets[${i}] are both called ${quote(name)}; give each set its own name`);
  });
  const metric = spec.metric;
  if (spec.ablation !== undefined) {
    if (spec.induction !== undefined) fail(['ablation'], true, 'an induction spec has corrupted rows of its own; remove "ablation", or give "pairs" to ablate');
    if (spec.direction === 'denoising') {
      fail(
        ['direction'],
        true,
        `"ablation" writes ${spec.ablation === 'zero' ? 'zeros' : 'means'} into the clean run, which is noising; remove "direction" (or make it "noising")`,
      );
    }
    if (metric === 'normalized_logit_diff') {
      fail(['metric'], false, 'normalized_logit_diff is scaled between the clean and the corrupted run, and an ablation has no corrupted run; use logit_diff');
    }
  }
  if (spec.induction !== undefined) {
    if (!INDUCTION_METRICS.includes(metric)) {
      fail(
        ['metric'],
        false,
        `metric ${quote(metric)} needs answer and wrong tokens, which an induction spec does not have; use answer_logprob (the demo's metric), answer_prob or kl_divergence`,
      );
    }
    const range = spec.induction.token_range;
    if (range !== undefined && !(range[0] < range[1])) {
      fail(['induction', 'token_range'], false, `induction.token_range is [${range[0]}, ${range[1]}]; it must be [lo, hi] with lo < hi, e.g. [100, 10000]`);
    }
  }
  (spec.pairs ?? []).forEach((pair, i) => {
    const at = `pairs[${i}]`;
    const hasText = pair.clean !== undefined || pair.corrupted !== undefined;
    const hasIds = pair.clean_ids !== undefined || pair.corrupted_ids !== undefined;
    if (hasText && hasIds) fail(['pairs', i, 'clean_ids'], true, `${at} gives both text (clean, corrupted) and token ids (clean_ids, corrupted_ids); keep one form`);
    if (!hasText && !hasIds) fail(['pairs', i], false, `${at} has no prompts; give "clean" and "corrupted" (text) or "clean_ids" and "corrupted_ids" (token ids)`);
    // An ablation needs only the clean prompt; otherwise prompts come in pairs (the schema says so with if/then).
    for (const [has, missing] of [
      ['clean', 'corrupted'],
      ['clean_ids', 'corrupted_ids'],
    ] as const) {
      if (spec.ablation === undefined && pair[has] !== undefined && pair[missing] === undefined) {
        fail(
          ['pairs', i, has],
          true,
          `${at} has '${has}' but no '${missing}'; ${has === 'clean' ? 'text prompts' : 'token-id prompts'} come in pairs — add '${missing}' (the corrupted prompt), or set "ablation" to patch zeros or means instead`,
        );
      }
    }
    if (pair.answer !== undefined && pair.answer_id !== undefined) fail(['pairs', i, 'answer_id'], true, `${at} gives both answer and answer_id; keep one`);
    if (pair.wrong !== undefined && pair.wrong_id !== undefined) fail(['pairs', i, 'wrong_id'], true, `${at} gives both wrong and wrong_id; keep one`);
    const hasAnswer = pair.answer !== undefined || pair.answer_id !== undefined;
    const hasWrong = pair.wrong !== undefined || pair.wrong_id !== undefined;
    if (hasAnswer && pair.targets !== undefined) {
      fail(['pairs', i, 'targets'], true, `${at} gives both an answer and targets; keep one (an answer is scored at the last token, targets at their positions)`);
    }
    if (LOGIT_DIFF_METRICS.includes(metric)) {
      if (!hasAnswer) fail(['pairs', i], false, `${at} has no answer; metric ${metric} needs "answer" (the clean prompt's next token, e.g. " Alice") and "wrong" (e.g. " Bob")`);
      if (!hasWrong)
        fail(['pairs', i], false, `${at} has no wrong answer; metric ${metric} needs "wrong" (the competing token, usually the corrupted prompt's answer, e.g. " Bob")`);
      if (pair.targets !== undefined)
        fail(['pairs', i, 'targets'], true, `${at}.targets: metric ${metric} does not read targets; remove them, or use answer_logprob or answer_prob`);
    }
    // The schema states these with anyOf (a number or a list), whose errors say little.
    for (const [label, at] of Object.entries(pair.positions ?? {})) {
      const ok = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
      if (!(ok(at) || (Array.isArray(at) && at.length > 0 && at.every(ok)))) {
        fail(['pairs', i, 'positions', label], false, `pairs[${i}].positions.${label} must be a position (a whole number ≥ 0, BOS counted) or a list of them, e.g. 4 or [4, 5]`);
      }
    }
    if (TARGET_METRICS.includes(metric) && !hasAnswer && pair.targets === undefined) {
      fail(['pairs', i], false, `${at} has no answer; metric ${metric} needs "answer" (scored at the last token, e.g. " Alice") or "targets": [{"pos": …, "token_id": …}]`);
    }
  });
  // The schema states plot's values with anyOf (number or keyword), whose errors say little.
  const plot = plotProblem(spec.plot);
  if (plot) fail(plot.key ? ['plot', plot.key] : ['plot'], false, plot.message);
}

/** path_patching's receivers are "resid_final" or a list (the schema's anyOf gives poor messages), and it is exact patching. */
function checkPathPatching(spec: PatchSpec, fail: (path: PathSeg[], useKey: boolean, message: string) => never): void {
  const pp = spec.path_patching;
  if (pp === undefined || pp === null || typeof pp !== 'object' || !('receivers' in pp)) return;
  const receivers: unknown = pp.receivers;
  const at = ['path_patching', 'receivers'];
  if (receivers !== RESID_FINAL) {
    if (!Array.isArray(receivers) || receivers.length === 0) {
      fail(
        at,
        false,
        `path_patching.receivers is ${Array.isArray(receivers) ? 'empty' : describeValue(receivers)}; write "${RESID_FINAL}" (the final residual stream) or a list of heads' inputs, e.g. ["L9H6.q", "L9H9.k"]`,
      );
    }
    const pattern = new RegExp(PATH_RECEIVER_PATTERN);
    receivers.forEach((r: unknown, i) => {
      if (typeof r !== 'string' || !pattern.test(r)) {
        const hint = r === RESID_FINAL ? `; "${RESID_FINAL}" is not a head: make receivers "${RESID_FINAL}" itself, not a list` : '';
        fail(
          [...at, i],
          false,
          `path_patching.receivers[${i}] is ${describeValue(r)}, not a receiver; a receiver is a head's query, key or value input, LxHy.q, LxHy.k or LxHy.v, e.g. "L9H6.q" (for k and v the head counts key/value heads)${hint}`,
        );
      }
      const first = receivers.indexOf(r);
      if (first !== i) fail([...at, i], false, `path_patching.receivers lists ${quote(r as string)} twice (receivers[${first}] and receivers[${i}]); remove one`);
    });
  }
  if (ATP_METHODS.includes(spec.method ?? 'exact')) {
    fail(
      ['method'],
      true,
      `path_patching is exact patching in two stages, which method ${spec.method} does not estimate; remove "method" (or make it "exact"), or move path_patching to a spec of its own`,
    );
  }
}

/**
 * Checks a parsed value against the schema and the rules, throwing one SpecError for the most
 * relevant problem: the first (in document order) of the direct errors, else the broken rule.
 */
export function validateSpecValue(value: unknown, file: string, info: TextInfo | undefined): PatchSpec {
  const fail = (path: PathSeg[], useKey: boolean, message: string): never => {
    const node = info ? locate(info, path) : undefined;
    const start = node ? (useKey ? (node.keyStart ?? node.start) : node.start) : undefined;
    const error = errorAt(file, info, start, node?.end, message);
    error.path = path;
    throw error;
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail([], false, `the spec must be a JSON object { … }, not ${describeValue(value)}; see the "PatchLens: New Patch File" template`);
  }
  const { first, all } = getValidators();
  let ok = first(value);
  let errors = first.errors ?? [];
  if (!ok && !hasMoreNodes(value, ALL_ERRORS_MAX_NODES)) {
    ok = all(value);
    errors = all.errors ?? [];
  }
  if (!ok) {
    // Capped: a file with thousands of bad ids needs one message, not a ranking of all of them.
    const direct = errors.filter((e) => !isComposite(e)).slice(0, 200);
    if (direct.length > 0) {
      const messages = direct.map((e) => ajvMessage(e, value));
      const where = info
        ? locateMany(
            info,
            messages.map((m) => m.path),
          )
        : new Map<string, NodePos>();
      const ranked = messages.map((m, k) => {
        const node = where.get(pathKey(m.path));
        return { m, late: LATE.has(direct[k]!.keyword) ? 1 : 0, start: node ? (m.useKey ? (node.keyStart ?? node.start) : node.start) : Infinity, k };
      });
      // Document order, so that fixing errors top to bottom works; a missing key points at its
      // object's start, before everything inside, so it comes after the rest (a misspelt key shows
      // up as both unknown and missing, and 'unknown key, did you mean' is the useful message).
      ranked.sort((a, b) => a.late - b.late || a.start - b.start || a.k - b.k);
      const best = ranked[0]!.m;
      fail(best.path, best.useKey, best.message);
    }
  }
  checkRules(value as PatchSpec, fail);
  if (!ok && errors.length > 0) {
    const e = errors[0]!;
    const path = pointerToPath(e.instancePath, value);
    fail(path, false, `${formatPath(path)} does not match the .patch.json schema (${e.message ?? e.keyword}); compare it with the template`);
  }
  return value as PatchSpec;
}
