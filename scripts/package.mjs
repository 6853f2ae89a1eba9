// Builds a platform-specific .vsix, offline, with @vscode/vsce.
//
//   node scripts/package.mjs [--target linux-x64] [--out FILE] [--no-build]
//
// The Node bundles keep node_modules external (onnxruntime-node and @napi-rs/canvas load native
// binaries from their own packages), so the production dependencies ship in the .vsix. What this
// changes in .vscodeignore, in a target-specific ignore file: node_modules is narrowed from
// everything to the run-time dependency closure, without
//   - onnxruntime-node's binaries for every other platform (each is 25-86 MB),
//   - @napi-rs/canvas's binary packages for other platforms,
//   - onnxruntime-node's install-time dependencies (adm-zip, global-agent and theirs: only its
//     download script uses them).
// The canvas binary of a target other than this machine's is installed by npm only on request:
//   npm install --no-save --os=darwin --cpu=arm64 @napi-rs/canvas
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
process.chdir(ROOT);

const TARGETS = {
  'linux-x64': { ort: 'linux/x64', canvas: ['linux-x64-gnu'] },
  'linux-arm64': { ort: 'linux/arm64', canvas: ['linux-arm64-gnu'] },
  'darwin-x64': { ort: 'darwin/x64', canvas: ['darwin-x64'] },
  'darwin-arm64': { ort: 'darwin/arm64', canvas: ['darwin-arm64'] },
  'win32-x64': { ort: 'win32/x64', canvas: ['win32-x64-msvc'] },
  'win32-arm64': { ort: 'win32/arm64', canvas: ['win32-arm64-msvc'] },
};
/** Dependencies a package needs only for its install script, never at run time. */
const INSTALL_ONLY = { 'onnxruntime-node': ['adm-zip', 'global-agent'] };

const { values: opt } = parseArgs({
  options: {
    target: { type: 'string', default: `${process.platform}-${process.arch}` },
    out: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
  },
});
const target = TARGETS[opt.target];
if (!target) {
  console.error(`package: unsupported target '${opt.target}'; use one of ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const out = resolve(opt.out ?? `${pkg.name}-${opt.target}-${pkg.version}.vsix`);

const readJson = (p) => JSON.parse(readFileSync(p, 'utf8'));
const pkgDir = (name) => join(ROOT, 'node_modules', name);

/** The packages the extension loads at run time: the dependency closure, without install-only ones. */
function runtimeClosure() {
  const seen = new Set();
  const visit = (name, via) => {
    if (seen.has(name)) return;
    if (!existsSync(join(pkgDir(name), 'package.json'))) {
      // Optional dependencies of other platforms are legitimately absent.
      if (via === 'optional') return;
      throw new Error(`${name} is not installed; run npm ci first`);
    }
    seen.add(name);
    const j = readJson(join(pkgDir(name), 'package.json'));
    const skip = new Set(INSTALL_ONLY[name] ?? []);
    for (const d of Object.keys(j.dependencies ?? {})) if (!skip.has(d)) visit(d, 'dep');
    for (const d of Object.keys(j.optionalDependencies ?? {})) visit(d, 'optional');
  };
  for (const d of Object.keys(pkg.dependencies ?? {})) visit(d, 'dep');
  return seen;
}

if (!opt['no-build']) {
  console.error('package: production build');
  execFileSync(process.execPath, ['scripts/build.mjs', '--production'], { stdio: 'inherit' });
}
for (const f of ['dist/extension.js', 'dist/engine/worker.js', 'dist/webview/main.js', 'dist/webview/main.css']) {
  if (!existsSync(f)) throw new Error(`${f} is missing after the build`);
}

const keep = runtimeClosure();
const missingCanvas = target.canvas.filter((c) => !existsSync(pkgDir(`@napi-rs/canvas-${c}`)));
if (missingCanvas.length > 0) {
  console.error(
    `package: @napi-rs/canvas-${missingCanvas[0]} is not installed, so PNG export will not work in this .vsix; ` +
      `install it with: npm install --no-save --os=${opt.target.split('-')[0]} --cpu=${opt.target.split('-')[1]} @napi-rs/canvas`,
  );
}
const ortBin = `node_modules/onnxruntime-node/bin/napi-v6/${target.ort}`;
if (!existsSync(ortBin)) throw new Error(`onnxruntime-node has no binaries for ${opt.target} (${ortBin})`);
const canvasBinaries = new Set(
  Object.values(TARGETS)
    .flatMap((t) => t.canvas)
    .map((c) => `@napi-rs/canvas-${c}`),
);

// vsce keeps whatever a '!' line matches, so node_modules is whitelisted package by package: the
// run-time closure, other platforms' canvas binaries left out, and of onnxruntime-node only its
// JavaScript and this target's binaries.
const packageLines = [...keep]
  .sort()
  .filter((n) => !canvasBinaries.has(n) || target.canvas.some((c) => n === `@napi-rs/canvas-${c}`))
  .flatMap((n) => (n === 'onnxruntime-node' ? [`!node_modules/${n}/package.json`, `!node_modules/${n}/dist/*.js`, `!${ortBin}/**`] : [`!node_modules/${n}/**`]));
const base = readFileSync('.vscodeignore', 'utf8')
  .split('\n')
  .filter((l) => l.trim() !== '!node_modules/**');
const ignore = [...base, `# generated by scripts/package.mjs for ${opt.target}`, ...packageLines, ''].join('\n');
const scratch = mkdtempSync(join(tmpdir(), 'patchlens-package-'));
const ignoreFile = join(scratch, 'vscodeignore');
writeFileSync(ignoreFile, ignore);

console.error(`package: vsce package --target ${opt.target}`);
const vsce = join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
try {
  execFileSync(
    process.execPath,
    [vsce, 'package', '--target', opt.target, '--ignoreFile', ignoreFile, '--out', out, '--allow-missing-repository', '--skip-license', '--no-rewrite-relative-links'],
    // vsce asks nothing when these flags are given; stdin closed makes sure it never waits.
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, npm_config_update_notifier: 'false' } },
  );
} finally {
  rmSync(scratch, { recursive: true, force: true });
  // dist/ is the development build everything else runs from: put it back (with its source maps).
  if (!opt['no-build']) execFileSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
}

// A summary of what went in, by top-level package, so a heavy newcomer is visible in review.
const listing = execFileSync('unzip', ['-l', out], { encoding: 'utf8' });
const sizes = new Map();
for (const line of listing.split('\n')) {
  const m = /^\s*(\d+)\s+\S+\s+\S+\s+(extension\/.+)$/.exec(line);
  if (!m) continue;
  const path = m[2].slice('extension/'.length);
  const parts = path.split('/');
  const key = parts[0] === 'node_modules' ? parts.slice(0, parts[1].startsWith('@') ? 3 : 2).join('/') : parts[0];
  sizes.set(key, (sizes.get(key) ?? 0) + Number(m[1]));
}
const mb = (b) => `${(b / 2 ** 20).toFixed(1)} MB`;
for (const [k, v] of [...sizes].sort((a, b) => b[1] - a[1])) console.log(`${mb(v).padStart(9)}  ${k}`);
console.log(`${relative(ROOT, out)}: ${mb(statSync(out).size)} (uncompressed ${mb([...sizes.values()].reduce((a, b) => a + b, 0))})`);
