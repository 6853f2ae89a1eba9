/**
 * The method a run command offers before it submits a run: exact patching, AtP, or AtP* with its
 * estimates checked by exact patching. Pure (the quick pick itself is in ui.ts), so which choice comes
 * first and what each one sends the engine are unit-tested.
 */
import type { MethodName } from '../protocol/spec';

/** How many of each sweep's largest estimates (and as many random others) the verified choice patches exactly when the spec names no verify_top. */
export const DEFAULT_VERIFY_TOP = 10;

export interface MethodChoice {
  readonly method: MethodName;
  readonly label: string;
  readonly detail: string;
  /** Whether the choice checks the estimates (verify_top) when the spec does not ask for it. */
  readonly verify: boolean;
}

export const METHOD_CHOICES: readonly MethodChoice[] = [
  { method: 'exact', verify: false, label: 'Exact patching', detail: "one patched run per index: every value is the patch's true effect" },
  { method: 'atp', verify: false, label: 'AtP', detail: 'attribution patching: every index estimated from two forward passes and one backward pass' },
  {
    method: 'atp_star',
    verify: true,
    label: 'AtP* with verification',
    detail: `AtP with the query/key fix and GradDrop; each sweep's ${DEFAULT_VERIFY_TOP} largest estimates and ${DEFAULT_VERIFY_TOP} random others patched exactly`,
  },
];

/** The choice a run starts on: the patchlens.method setting, else the spec's own method, else exact patching. */
export function defaultMethod(setting: MethodName | undefined, specMethod: MethodName | undefined): MethodName {
  return setting ?? specMethod ?? 'exact';
}

/** Why the default is the default, shown beside it. */
export function defaultReason(setting: MethodName | undefined, specMethod: MethodName | undefined): string {
  return setting ? 'the patchlens.method setting' : specMethod ? "the spec's method" : 'the default';
}

/** What a choice adds to the run's parameters: its method, and a verify_top when it verifies and the spec names none. */
export function methodParams(choice: MethodChoice, specVerifyTop: number | undefined): { method: MethodName; verifyTop?: number } {
  return { method: choice.method, ...(choice.verify && specVerifyTop === undefined ? { verifyTop: DEFAULT_VERIFY_TOP } : {}) };
}
