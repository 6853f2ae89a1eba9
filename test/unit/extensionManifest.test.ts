import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(__dirname, '../..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const contributes = pkg.contributes;

test('every command the extension registers is declared, and every declared one is registered', () => {
  const source = readFileSync(join(ROOT, 'src/extension/commands.ts'), 'utf8');
  const registered = [...source.matchAll(/reg\('(patchlens\.[A-Za-z]+)'/g)].map((m) => m[1]).sort();
  const declared = (contributes.commands as { command: string }[]).map((c) => c.command).sort();
  assert.deepEqual(registered, declared);
  for (const id of [
    'patchlens.patchSelection',
    'patchlens.runPatchFile',
    'patchlens.newPatchFile',
    'patchlens.showRuns',
    'patchlens.exportHeatmap',
    'patchlens.selectModel',
    'patchlens.selectDevice',
    'patchlens.cancelRun',
    'patchlens.openExample',
  ]) {
    assert.ok(declared.includes(id), id);
  }
});

test('menus name declared commands; the spec menus match *.patch.json files', () => {
  const declared = new Set((contributes.commands as { command: string }[]).map((c) => c.command));
  for (const [menu, items] of Object.entries(contributes.menus as Record<string, { command: string; when?: string }[]>)) {
    for (const item of items) assert.ok(declared.has(item.command), `${menu}: ${item.command}`);
  }
  const when = (menu: string, command: string) => (contributes.menus[menu] as { command: string; when: string }[]).find((i) => i.command === command)?.when;
  assert.equal(when('editor/context', 'patchlens.patchSelection'), 'editorHasSelection');
  for (const menu of ['explorer/context', 'editor/title']) {
    const re = /^resourceFilename =~ \/(.*)\/$/.exec(when(menu, 'patchlens.runPatchFile') ?? '');
    assert.ok(re, menu);
    const regex = new RegExp(re[1]!);
    assert.ok(regex.test('ioi.patch.json') && !regex.test('ioi.json') && !regex.test('patch.json.bak'), menu);
  }
});

test('the manifest: engine range, entry point, view, icon, schema and settings', () => {
  assert.equal(pkg.engines.vscode, '^1.100.0');
  assert.equal(pkg.main, './dist/extension.js');
  assert.deepEqual(
    contributes.views.patchlens.map((v: { id: string }) => v.id),
    ['patchlens.runs'],
  );
  assert.ok(existsSync(join(ROOT, contributes.viewsContainers.activitybar[0].icon)));
  assert.deepEqual(contributes.jsonValidation, [{ fileMatch: '*.patch.json', url: './schemas/patch.schema.json' }]);
  assert.ok(existsSync(join(ROOT, 'schemas/patch.schema.json')));
  // Every setting settings.ts reads is declared (parseSettings reads keys without the prefix).
  const settingsSource = readFileSync(join(ROOT, 'src/extension/settings.ts'), 'utf8');
  const read = [...settingsSource.matchAll(/get\('([A-Za-z]+)'\)/g)].map((m) => `patchlens.${m[1]}`).sort();
  assert.deepEqual(read, Object.keys(contributes.configuration.properties).sort());
  assert.equal(contributes.configuration.properties['patchlens.memoryBudgetMiB'].default, 1024);
  assert.equal(contributes.configuration.properties['patchlens.resultsFolder'].default, '.patchlens/runs');
});
