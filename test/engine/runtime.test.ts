import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { Runtime, vulkanDrivers } from '../../src/engine/runtime';
import { makeTmpDir } from '../helpers/checkpoint';

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE = ['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json'].find(existsSync);

test('an unknown device is a UserError listing the choices', async () => {
  await assert.rejects(Runtime.create('tpu' as never), (e: Error) => e.name === 'UserError' && /auto, cpu, webgpu/.test(e.message));
});

/** Runtime.create('auto') in a fresh process with `env`: its choice, its notes, its log and all it wrote to stderr. */
function autoIn(env: Record<string, string>): { provider: string; notes: string[]; log: string[]; stderr: string } {
  const code = `const log = []; require('./src/engine/runtime').Runtime.create('auto', (m) => log.push(m)).then((r) => console.log(JSON.stringify({ provider: r.provider, notes: r.notes, log })))`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
    cwd: resolve(__dirname, '../..'),
    encoding: 'utf8',
    env: { ...process.env, XDG_RUNTIME_DIR: '/tmp', ...env },
  });
  assert.equal(r.status, 0, r.stderr);
  return { ...(JSON.parse(r.stdout) as { provider: string; notes: string[]; log: string[] }), stderr: r.stderr };
}

test('auto picks a provider that works, logs its choice and why in one line, and prints nothing to stderr', () => {
  const { provider, notes, log, stderr } = autoIn({});
  assert.equal(stderr, '');
  assert.ok(['cpu', 'cuda', 'webgpu'].includes(provider));
  assert.equal(log.length, 1, JSON.stringify(log));
  assert.match(log[0]!, new RegExp(`^execution provider: ${provider} \\(auto`));
  if (provider === 'cpu') assert.ok(notes.length >= 1 && notes.every((n) => /unavailable/.test(n)), JSON.stringify(notes));
});

test('auto never picks a CPU-emulated Vulkan driver: SwiftShader alone, lavapipe alone, both', (t) => {
  const cases = [
    ['SwiftShader', existsSync(SWIFTSHADER) ? SWIFTSHADER : undefined],
    ['lavapipe', LAVAPIPE],
    ['SwiftShader and lavapipe', existsSync(SWIFTSHADER) && LAVAPIPE ? `${SWIFTSHADER}:${LAVAPIPE}` : undefined],
  ] as const;
  for (const [label, files] of cases) {
    if (!files) {
      t.diagnostic(`${label}: not installed here, skipped`);
      continue;
    }
    const { provider, notes, stderr } = autoIn({ VK_ICD_FILENAMES: files });
    assert.equal(provider, 'cpu', label);
    assert.equal(stderr, '', `${label}: nothing native on stderr`);
    assert.ok(
      notes.some((n) => /webgpu unavailable: only CPU-emulated Vulkan drivers/.test(n)),
      `${label}: ${JSON.stringify(notes)}`,
    );
  }
});

test('Vulkan drivers are read from their manifests and sorted into hardware and CPU-emulated', () => {
  const dir = makeTmpDir('vulkan-icd');
  const manifest = (name: string, library: string) => {
    mkdirSync(join(dir, 'vulkan', 'icd.d'), { recursive: true });
    const p = join(dir, 'vulkan', 'icd.d', name);
    writeFileSync(p, JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: library, api_version: '1.3.0' } }));
    return p;
  };
  manifest('nvidia_icd.json', 'libGLX_nvidia.so.0');
  manifest('lvp_icd.x86_64.json', '/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so');
  manifest('swiftshader.json', './libvk_swiftshader.so');
  writeFileSync(join(dir, 'vulkan', 'icd.d', 'broken.json'), '{');
  const found = vulkanDrivers({ XDG_DATA_DIRS: dir, HOME: join(dir, 'nohome') })
    .map((d) => [d.name, d.emulated])
    .sort();
  assert.deepEqual(found, [
    ['GLX_nvidia', false],
    ['lvp', true],
    ['swiftshader', true],
  ]);
  // The variables the loader itself reads win over the folders.
  assert.deepEqual(
    vulkanDrivers({ VK_ICD_FILENAMES: join(dir, 'vulkan', 'icd.d', 'swiftshader.json'), XDG_DATA_DIRS: dir }).map((d) => d.name),
    ['swiftshader'],
  );
});

test('a hardware driver that finds no device: auto tries it in a child process, quietly, and keeps the CPU', () => {
  const dir = makeTmpDir('vulkan-fake-gpu');
  const file = join(dir, 'fake_gpu_icd.json');
  writeFileSync(file, JSON.stringify({ file_format_version: '1.0.0', ICD: { library_path: join(dir, 'libvulkan_fakegpu.so'), api_version: '1.3.0' } }));
  const { provider, notes, stderr } = autoIn({ VK_ICD_FILENAMES: file });
  assert.equal(provider, 'cpu');
  assert.equal(stderr, '');
  const note = notes.find((n) => n.startsWith('webgpu unavailable: '));
  assert.ok(note && !note.includes('\n') && note.length < 300, JSON.stringify(notes));
});
