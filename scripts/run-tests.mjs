// Runs every test file under test/ (TypeScript, through tsx) with node's own test runner.
// `node scripts/run-tests.mjs [folder...]` limits the run to some folders (unit, engine, e2e...).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const folders = process.argv.slice(2);
const roots = folders.length > 0 ? folders.map((f) => join('test', f)) : ['test'];
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
};
roots.forEach(walk);
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
