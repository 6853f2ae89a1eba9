// The one build: extension host, engine worker, CLI and benchmarks (Node, CommonJS) and the webview
// (browser, IIFE). Node bundles keep node_modules external: onnxruntime-node and @napi-rs/canvas carry
// native binaries that must be loaded from their own packages.
import * as esbuild from 'esbuild';
import { existsSync, readdirSync } from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const nodeEntries = {
  cli: 'src/cli.ts',
  demo: 'src/demo.ts',
  'engine/worker': 'src/engine/worker.ts',
  extension: 'src/extension/extension.ts',
};
for (const f of existsSync('bench') ? readdirSync('bench') : []) {
  if (f.endsWith('.ts')) nodeEntries[`bench/${f.slice(0, -3)}`] = `bench/${f}`;
}
const present = (entries) => Object.fromEntries(Object.entries(entries).filter(([, p]) => existsSync(p)));

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning' };
const builds = [
  { ...common, entryPoints: present(nodeEntries), outdir: 'dist', platform: 'node', format: 'cjs',
    target: 'node20', packages: 'external', external: ['vscode'] },
  { ...common, entryPoints: present({ 'webview/main': 'webview/main.ts' }), outdir: 'dist', platform: 'browser',
    format: 'iife', target: 'es2022' },
].filter((b) => Object.keys(b.entryPoints).length > 0);

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
