// `npm test`'s first step: the system packages the tests need besides node_modules. The webview
// tests drive Debian's Chromium, the PNG tests draw labels with DejaVu Sans, and the GPU tests run
// onnxruntime's WebGPU provider on Chromium's SwiftShader through the Vulkan loader (libvulkan1), and
// check that `auto` passes over Mesa's CPU drivers (mesa-vulkan-drivers). Missing ones are
// installed with apt-get when this runs as root (or with password-less sudo), as .ci/run always did;
// otherwise the run stops at once with the one command that fixes it. PATCHLENS_NO_APT=1 only checks.
// (The end-to-end tests' VS Code host is scripts/e2e-setup.sh's job; without it they skip.)
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const multiarch = process.arch === 'arm64' ? 'aarch64' : 'x86_64';
const NEEDED = [
  { pkg: 'chromium', files: ['/usr/bin/chromium', '/usr/lib/chromium/vk_swiftshader_icd.json'] },
  { pkg: 'libvulkan1', files: [`/usr/lib/${multiarch}-linux-gnu/libvulkan.so.1`] },
  { pkg: 'mesa-vulkan-drivers', files: [`/usr/share/vulkan/icd.d/lvp_icd.${multiarch}.json`] },
  { pkg: 'fonts-dejavu-core', files: ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'] },
];

const missing = NEEDED.filter((n) => !n.files.every((f) => existsSync(f))).map((n) => n.pkg);
if (missing.length === 0) process.exit(0);

const command = `apt-get install -y ${missing.join(' ')}`;
const stop = (why) => {
  console.error(`npm test needs the Debian/Ubuntu packages ${missing.join(', ')} (${why}). Install them with:\n\n    sudo ${command}\n`);
  process.exit(1);
};

const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
if (!hasApt) stop('apt-get is not available here, so they cannot be installed automatically');
if (process.env.PATCHLENS_NO_APT === '1') stop('PATCHLENS_NO_APT=1 is set');
const root = process.getuid?.() === 0;
const sudo = !root && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
if (!root && !sudo) stop('installing them needs root');

const run = (args) => {
  const argv = [...(root ? [] : ['sudo', '-n']), 'env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', '-o', 'DPkg::Lock::Timeout=600', ...args];
  console.error(`> ${argv.join(' ')}`);
  return spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
};
console.error(`npm test: installing ${missing.join(', ')} (needed by the webview, PNG and GPU tests)`);
if (!run(['update', '-qq']) || !run(['install', '-y', '-qq', ...missing])) stop('apt-get failed');
