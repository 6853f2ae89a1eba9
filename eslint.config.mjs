// ESLint (flat config): eslint's and typescript-eslint's recommended rules, without type information
// (fast enough for every save). Formatting is Prettier's (.prettierrc.json), not ESLint's.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.e2e/', '.test-tmp/', '.patchlens/', '.bench-cache/', 'patchlens-demo/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // `_` marks a parameter or binding kept for its position; tsc's noUnused* checks the rest.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  { files: ['webview/**'], languageOptions: { globals: { ...globals.browser } } },
  // The `patchlens` command's launcher: CommonJS, as npm runs it.
  { files: ['bin/*.js'], languageOptions: { sourceType: 'commonjs' }, rules: { '@typescript-eslint/no-require-imports': 'off' } },
);
