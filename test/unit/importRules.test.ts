/**
 * The layout's rules (docs/ARCHITECTURE.md, Folders), checked on the real source tree: three processes that
 * share only what may cross between them. Imports are read with TypeScript's own pre-processor
 * (static, type-only, re-exports, dynamic import() and require()), not with a regular expression.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { posix, join, relative, sep } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const ROOT = join(__dirname, '..', '..');

type Area = 'protocol' | 'presentation' | 'common' | 'spec' | 'engine' | 'extension' | 'webview' | 'frontends' | 'schemas' | 'manifest' | 'media';

const AREAS: [prefix: string, area: Area][] = [
  ['src/protocol/', 'protocol'],
  ['src/presentation/', 'presentation'],
  ['src/common/', 'common'],
  ['src/spec/', 'spec'],
  ['src/engine/', 'engine'],
  ['src/extension/', 'extension'],
  ['src/', 'frontends'],
  ['webview/', 'webview'],
  ['schemas/', 'schemas'],
  ['media/', 'media'],
  ['package.json', 'manifest'],
];

interface Rule {
  /** The folders of ours this area may import from. */
  readonly mayImport: readonly Area[];
  /** Runs in the webview (or may be loaded there): no Node built-ins. */
  readonly browserSafe?: boolean;
  /** May import the `vscode` API (only the extension host has it). */
  readonly vscode?: boolean;
}

const RULES: Record<Exclude<Area, 'schemas' | 'manifest' | 'media'>, Rule> = {
  // Types and pure functions that cross a process boundary: nothing of ours but itself.
  protocol: { mayImport: ['protocol'], browserSafe: true },
  // Drawing shared by the webview and the engine's PNG export.
  presentation: { mayImport: ['presentation', 'protocol'], browserSafe: true },
  // Node code shared by the engine, the CLI and the extension.
  common: { mayImport: ['common', 'protocol'] },
  // The .patch.json format: parsed and checked by the extension and the engine alike.
  spec: { mayImport: ['spec', 'common', 'protocol', 'schemas'], browserSafe: true },
  engine: { mayImport: ['engine', 'spec', 'common', 'presentation', 'protocol', 'manifest'] },
  extension: { mayImport: ['extension', 'spec', 'common', 'presentation', 'protocol', 'manifest'], vscode: true },
  webview: { mayImport: ['webview', 'presentation', 'protocol', 'media'], browserSafe: true },
  frontends: { mayImport: ['frontends', 'engine', 'spec', 'common', 'presentation', 'protocol', 'manifest'] },
};

function areaOf(path: string): Area | undefined {
  return AREAS.find(([prefix]) => path === prefix || path.startsWith(prefix))?.[1];
}

const isNodeBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0]!);

/** Every import of `files` (repo-relative paths) that breaks a rule, as 'file: what'. */
function importViolations(files: readonly { path: string; text: string }[]): string[] {
  const found: string[] = [];
  for (const f of files) {
    const area = areaOf(f.path);
    if (area === undefined || !(area in RULES)) continue;
    const rule = RULES[area as keyof typeof RULES];
    for (const { fileName: spec } of ts.preProcessFile(f.text, true, true).importedFiles) {
      if (spec.startsWith('.')) {
        const target = posix.normalize(posix.join(posix.dirname(f.path), spec));
        const to = areaOf(target);
        if (to === undefined || !rule.mayImport.includes(to))
          found.push(`${f.path}: imports ${target} (${to ?? 'outside the source folders'}), but ${area} may import only ${rule.mayImport.join(', ')}`);
      } else if (spec === 'vscode') {
        if (!rule.vscode) found.push(`${f.path}: imports vscode, which only src/extension may`);
      } else if (isNodeBuiltin(spec) && rule.browserSafe) {
        found.push(`${f.path}: imports the Node built-in ${spec}, but ${area} must run in a browser`);
      }
    }
  }
  return found;
}

function sourceFiles(dir: string): { path: string; text: string }[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => {
      const abs = join(e.parentPath, e.name);
      return { path: relative(ROOT, abs).split(sep).join('/'), text: readFileSync(abs, 'utf8') };
    });
}

test('the source tree keeps the import rules', () => {
  const files = [...sourceFiles('src'), ...sourceFiles('webview')];
  assert.ok(files.length > 50, `only ${files.length} files found`);
  for (const a of ['protocol', 'presentation', 'common', 'spec', 'engine', 'extension', 'webview']) {
    assert.ok(
      files.some((f) => areaOf(f.path) === a),
      `no file in ${a}: the rules no longer match the layout`,
    );
  }
  assert.deepEqual(importViolations(files), []);
});

test('the check finds each kind of violating import', () => {
  const planted: [path: string, text: string, expected: RegExp][] = [
    ['src/engine/a.ts', "import * as vscode from 'vscode';", /src\/engine\/a\.ts: imports vscode/],
    ['src/engine/b.ts', "import type { RunUi } from '../extension/runDispatcher';", /src\/engine\/b\.ts: imports src\/extension\/runDispatcher \(extension\)/],
    ['src/extension/c.ts', "export async function f() { return import('../engine/runSpec'); }", /src\/extension\/c\.ts: imports src\/engine\/runSpec \(engine\)/],
    ['src/extension/d.ts', "const m = require('../engine/tensor');", /src\/extension\/d\.ts: imports src\/engine\/tensor/],
    ['src/protocol/e.ts', "export { UserError } from '../common/userError';", /src\/protocol\/e\.ts: imports src\/common\/userError \(common\)/],
    ['webview/f.ts', "import { readFileSync } from 'node:fs';", /webview\/f\.ts: imports the Node built-in node:fs/],
    ['webview/g.ts', "import { numel } from '../src/engine/tensor';", /webview\/g\.ts: imports src\/engine\/tensor \(engine\)/],
    ['src/presentation/h.ts', "import { join } from 'path';", /src\/presentation\/h\.ts: imports the Node built-in path/],
    ['src/common/i.ts', "import { parseSpecText } from '../spec/parseSpec';", /src\/common\/i\.ts: imports src\/spec\/parseSpec \(spec\)/],
  ];
  for (const [path, text, expected] of planted) {
    const found = importViolations([{ path, text }]);
    assert.equal(found.length, 1, `${path}: ${JSON.stringify(found)}`);
    assert.match(found[0]!, expected);
  }
  // What the rules allow stays allowed.
  const allowed = [
    {
      path: 'webview/ok.ts',
      text: "import { shortValue } from '../src/presentation/resultText';\nimport type { PatchResult } from '../src/protocol/result';\nimport { Chart } from 'chart.js';",
    },
    { path: 'src/extension/ok.ts', text: "import * as vscode from 'vscode';\nimport { parseSpecText } from '../spec/parseSpec';\nimport { readFileSync } from 'node:fs';" },
    { path: 'src/engine/ok.ts', text: "import { parseSpecText } from '../spec/parseSpec';\nimport pkg from '../../package.json';" },
  ];
  assert.deepEqual(importViolations(allowed), []);
});
