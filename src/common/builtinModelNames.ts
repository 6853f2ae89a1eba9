/**
 * The models that ship with PatchLens, as the model picker lists them. The engine builds them by name
 * (src/engine/model/builtinModels.ts); a unit test keeps the two lists equal.
 */
export const BUILTIN_MODELS: readonly { readonly name: string; readonly description: string }[] = [
  { name: 'induction-2l', description: 'induction-2l (built in): 2-layer attention-only model with a constructed induction circuit' },
];
