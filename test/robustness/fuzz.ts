/**
 * Shared pieces of the robustness suite: a seeded random source (every fuzz loop is reproducible
 * from its seed), the check that an error is what a user may see, and a collector that keeps going
 * after a failure so one run reports every distinct problem rather than the first.
 */
import { isUserError } from '../../src/common/userError';
import { uniform } from '../../src/engine/random';

/** Mulberry32: small, fast, and identical on every machine, so a failing case number reproduces. */
export class Rng {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = uniform(seed);
  }
  /** Integer in [lo, hi). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 256);
    return b;
  }
}

// A user-facing message is one line; these would mean a stack, an object dump or a raw engine error
// leaked into it.
// leaked into it. U+2028/2029 and NEL count as line breaks: editors and notifications break on them.
const LEAKS: [RegExp, string][] = [
  [/[\n\r\u2028\u2029\u0085]/, 'a line break'],
  [/\bat \S+ \(\S*:\d+:\d+\)|\(\/\S*:\d+:\d+\)|node:internal/, 'a stack frame'],
  [/\[object Object\]/, '[object Object]'],
  [/\b(undefined|NaN)\b/, "'undefined' or 'NaN' (an unset field or a failed computation printed)"],
  [/(TypeError|RangeError|ReferenceError|SyntaxError): /, 'a JavaScript error name'],
];

// What a user typed, as messages quote it ('…' or "…"): it may say anything, so the checks above
// look only at the message around it.
const QUOTED = /'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g;

/** What is wrong with `e` as an error shown to a user, or undefined when it is fine. */
export function userErrorProblem(e: unknown, maxLength = 2000): string | undefined {
  if (!isUserError(e)) {
    const what = e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e).slice(0, 300);
    return `not a UserError: ${what}`;
  }
  const m = e.message;
  if (m.length === 0) return 'an empty message';
  if (m.length > maxLength) return `a ${m.length}-character message`;
  const own = m.replace(QUOTED, "'…'");
  if (/[\n\r\u2028\u2029\u0085]/.test(m)) return `message contains a line break: ${JSON.stringify(m.slice(0, 300))}`;
  for (const [re, what] of LEAKS) if (re.test(own)) return `message contains ${what}: ${JSON.stringify(m.slice(0, 300))}`;
  return undefined;
}

/** Runs `f` synchronously, returning its value or the error it threw. */
export function attempt<T>(f: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Collects property violations: the first few of each kind are kept with the case that produced
 * them, so a report names a reproducible case without a wall of duplicates.
 */
export class Failures {
  private readonly byKind = new Map<string, { count: number; examples: string[] }>();
  cases = 0;

  add(kind: string, example: string): void {
    let k = this.byKind.get(kind);
    if (!k) this.byKind.set(kind, (k = { count: 0, examples: [] }));
    k.count++;
    if (k.examples.length < 3) k.examples.push(example.length > 400 ? `${example.slice(0, 400)}…` : example);
  }

  get total(): number {
    let n = 0;
    for (const k of this.byKind.values()) n += k.count;
    return n;
  }

  report(): string {
    return [...this.byKind].map(([kind, k]) => `${k.count}× ${kind}\n${k.examples.map((x) => `    e.g. ${x}`).join('\n')}`).join('\n');
  }
}

/** A short printable form of a fuzz input, for failure reports. */
export function preview(text: string, max = 160): string {
  const s = JSON.stringify(text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text);
  return s;
}
