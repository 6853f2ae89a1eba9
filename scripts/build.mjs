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
  { ...common, entryPoints: present(nodeEntries), outdir: 'dist', platform: 'node', format: 'cjs', target: 'node20', packages: 'external', external: ['vscode'] },
  { ...common, entryPoints: present({ 'webview/main': 'webview/main.ts' }), outdir: 'dist', platform: 'browser', format: 'iife', target: 'es2022' },
].filter((b) => Object.keys(b.entryPoints).length > 0);

if (watch) {
  // `npm run watch` (VS Code's build task, .vscode/tasks.json): one 'started'/'finished' pair around
  // each rebuild of any bundle, and each problem on one `file:line:col: severity: text` line, which is
  // what the task's problem matcher reads.
  let active = 0;
  const report = {
    name: 'watch-report',
    setup(build) {
      build.onStart(() => {
        if (active++ === 0) console.log('[watch] build started');
      });
      build.onEnd((result) => {
        for (const [severity, messages] of [
          ['error', result.errors],
          ['warning', result.warnings],
        ]) {
          for (const m of messages) {
            const l = m.location;
            console.log(l ? `${l.file}:${l.line}:${l.column + 1}: ${severity}: ${m.text}` : `${severity}: ${m.text}`);
          }
        }
        if (--active === 0) console.log('[watch] build finished');
      });
    },
  };
  const contexts = await Promise.all(builds.map((b) => esbuild.context({ ...b, logLevel: 'silent', plugins: [report] })));
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
