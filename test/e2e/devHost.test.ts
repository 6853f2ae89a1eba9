/**
 * F5 without a screen: what .vscode/launch.json's "Run PatchLens" does, done by hand. Its preLaunchTask
 * (`npm run watch`, .vscode/tasks.json) builds dist/ in watch mode, then a host starts with the source
 * tree as its extension development path; a run from the command palette must then be served by the
 * engine built from this tree.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse } from 'jsonc-parser';
import type { PatchResult } from '../../src/protocol/result';
import { makeTmpDir } from '../helpers/checkpoint';
import { enginePids, type Host, pickMethod, quickPickRows, REPO, runCommand, skipReason, startHost, step, waitFor } from './host';

const skip = skipReason();

interface LaunchConfig {
  name: string;
  type: string;
  args?: string[];
  preLaunchTask?: string;
}

describe('F5: PatchLens from source in a development host', { skip, timeout: 5 * 60_000 }, () => {
  let watch: ChildProcess | undefined;
  let host: Host | undefined;
  let output = '';

  after(async () => {
    await host?.close();
    if (watch && watch.exitCode === null) {
      const exited = new Promise((r) => watch!.once('exit', r));
      watch.kill('SIGTERM');
      await exited;
    }
  });

  test('the launch configuration builds in watch mode, the host loads the extension from the tree, and a run uses its engine', async () => {
    const launch = parse(readFileSync(join(REPO, '.vscode', 'launch.json'), 'utf8')) as { configurations: LaunchConfig[] };
    const tasks = parse(readFileSync(join(REPO, '.vscode', 'tasks.json'), 'utf8')) as { tasks: { label: string; type: string; script?: string }[] };
    const f5 = launch.configurations.find((c) => c.name === 'Run PatchLens')!;
    assert.equal(f5.type, 'extensionHost');
    assert.ok(f5.args?.includes('--extensionDevelopmentPath=${workspaceFolder}'));
    const task = tasks.tasks.find((t) => t.label === f5.preLaunchTask)!;
    assert.deepEqual([task.type, task.script], ['npm', 'watch']);

    // The preLaunchTask's npm script, run directly (so that stopping it stops the build); its problem
    // matcher waits for the first 'finished'.
    const script = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts[task.script!]!;
    const [cmd, ...args] = script.split(' ');
    assert.equal(cmd, 'node');
    watch = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    watch.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    watch.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor('the watch build', () => (/\[watch\] build finished/.test(output) ? true : undefined), 120_000);
    assert.doesNotMatch(output, /: error: /);
    step('watch build finished');

    const dir = makeTmpDir('e2e-dev');
    const ws = join(dir, 'examples');
    cpSync(join(REPO, 'examples'), ws, { recursive: true });
    host = await startHost({
      developmentPath: REPO,
      workspace: ws,
      runDir: join(dir, 'host'),
      userSettings: { 'patchlens.device': 'cpu', 'patchlens.cacheDir': join(dir, 'model-cache') },
    });
    assert.deepEqual(
      readdirSync(join(dir, 'host', 'ext')).filter((n) => n.startsWith('patchlens')),
      [],
      'nothing was installed: the extension comes from the tree',
    );

    const since = Date.now();
    await runCommand(host.page, 'PatchLens: Run Patch File');
    const pick = quickPickRows(host.page).filter({ hasText: 'induction-AB.patch.json' }).first();
    await pick.waitFor({ timeout: 30_000 });
    await pick.click();
    await pickMethod(host.page);
    // The engine that serves the run is the one this tree's build wrote.
    const pids = await waitFor('an engine started from the tree', () => (enginePids(REPO).length > 0 ? enginePids(REPO) : undefined), 60_000);
    step(`engine ${pids.join(', ')} runs ${join(REPO, 'dist', 'engine', 'worker.js')}`);
    const runs = join(ws, '.patchlens', 'runs');
    const result = await waitFor(
      'the run of induction-AB',
      () => {
        try {
          const f = readdirSync(runs).find((n) => n.startsWith('induction-AB') && n.endsWith('.result.json') && statSync(join(runs, n)).size > 0);
          const r = f ? (JSON.parse(readFileSync(join(runs, f), 'utf8')) as PatchResult) : undefined;
          return r && Date.parse(r.createdAt) >= since - 1000 ? r : undefined;
        } catch {
          return undefined;
        }
      },
      120_000,
    );
    assert.equal(result.status, 'done');
    assert.equal(result.model.id, 'induction-2l');
  });
});
