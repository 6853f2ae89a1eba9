import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DEVICE_SETTINGS, type DeviceSetting } from '../protocol/engineRpc';
import { GraphBuilder } from './graph/graphBuilder';
import { DataType } from './graph/onnxProto';
import { UserError } from '../common/userError';

type Provider = Exclude<DeviceSetting, 'auto'>;

/** GPU providers worth trying on each platform, best first; `cpu` always remains. */
const AUTO_ORDER: Record<string, Provider[]> = {
  linux: ['cuda', 'webgpu'],
  win32: ['cuda', 'dml', 'webgpu'],
  darwin: ['coreml', 'webgpu'],
};

export type Logger = (message: string) => void;

/**
 * What `auto` knows of a provider before trying it: why not to try it at all, or the environment to try
 * it in. On Linux, WebGPU runs on Vulkan drivers; those that run on the CPU (lavapipe/llvmpipe,
 * SwiftShader) are slower than the CPU provider, so `auto` offers Dawn only the hardware drivers.
 */
function autoCandidate(p: Provider): { skip: string } | { env: Record<string, string>; tried?: string } {
  if (p === 'cuda') {
    const bin = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(bin, lib)) ? { env: {} } : { skip: `the CUDA provider library is not installed (${lib})` };
  }
  if (p === 'webgpu' && process.platform === 'linux') {
    if (!LOADER_DIRS.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return { skip: 'no Vulkan loader (libvulkan.so.1)' };
    const drivers = vulkanDrivers();
    const hardware = drivers.filter((d) => !d.emulated);
    if (hardware.length === 0) {
      const names = drivers.map((d) => d.name);
      return { skip: names.length > 0 ? `only CPU-emulated Vulkan drivers (${names.join(', ')}), slower than the CPU provider` : 'no Vulkan driver' };
    }
    const files = hardware.map((d) => d.manifest).join(':');
    return { env: { VK_DRIVER_FILES: files, VK_ICD_FILENAMES: files }, tried: `Vulkan drivers ${hardware.map((d) => d.name).join(', ')}` };
  }
  return { env: {} };
}

const LOADER_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];

/** Vulkan drivers that run on the CPU, by the library their manifest names. */
const EMULATED_DRIVER = /lvp|llvmpipe|swiftshader|swrast/i;

/**
 * The Vulkan drivers (ICD manifests) the loader would use: the files VK_DRIVER_FILES / VK_ICD_FILENAMES
 * name, else the manifest folders the loader searches.
 */
export function vulkanDrivers(env: NodeJS.ProcessEnv = process.env): { manifest: string; name: string; emulated: boolean }[] {
  const listed = (env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES)?.split(':').filter(Boolean);
  const dataDirs = [
    env.XDG_CONFIG_HOME ?? join(env.HOME ?? '/root', '.config'),
    '/etc/xdg',
    '/etc',
    env.XDG_DATA_HOME ?? join(env.HOME ?? '/root', '.local/share'),
    ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':'),
  ];
  const manifests =
    listed ??
    dataDirs.flatMap((d) => {
      const dir = join(d, 'vulkan', 'icd.d');
      try {
        return readdirSync(dir)
          .filter((f) => f.endsWith('.json'))
          .map((f) => join(dir, f));
      } catch {
        return [];
      }
    });
  return manifests.flatMap((manifest) => {
    let library: unknown;
    try {
      library = (JSON.parse(readFileSync(manifest, 'utf8')) as { ICD?: { library_path?: unknown } }).ICD?.library_path;
    } catch {
      return [];
    }
    if (typeof library !== 'string') return [];
    const name = basename(library)
      .replace(/^lib(vulkan_|vk_)?/, '')
      .replace(/(_icd)?\.so.*$|\.dll$/, '');
    return [{ manifest, name, emulated: EMULATED_DRIVER.test(library) }];
  });
}

function probeGraph(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', DataType.FLOAT, [2, 2]);
  g.output('y', g.op('MatMul', [x, x]), DataType.FLOAT, [2, 2]);
  return g.build('probe');
}

const PROBE_TIMEOUT_MS = 60_000;

/**
 * Whether a provider runs a probe graph, tried in a short-lived child process: native libraries that fail
 * to find a device print to the process's stderr (Dawn's adapter warnings, CUDA's errors), which a user
 * would read as a crash, and may take the process down. Returns the reason it does not work, or undefined.
 */
function providerWorks(provider: Provider, env: Record<string, string>): Promise<string | undefined> {
  const script = [
    `const ort = require(${JSON.stringify(require.resolve('onnxruntime-node'))});`,
    `const say = (r) => process.stdout.write(JSON.stringify(r));`,
    `ort.InferenceSession.create(Buffer.from(process.argv[1], 'base64'), { executionProviders: [${JSON.stringify(provider)}], logSeverityLevel: 4 })`,
    `  .then((s) => s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]) }))`,
    `  .then((o) => say(o.y.data[0] === 7 && o.y.data[3] === 22 ? {} : { error: 'it computed a wrong result on a probe graph' }))`,
    `  .catch((e) => say({ error: String((e && e.message) || e) }));`,
  ].join('\n');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', script, Buffer.from(probeGraph()).toString('base64')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: PROBE_TIMEOUT_MS,
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', (e) => resolve(`the probe process failed (${e.message})`));
    child.on('close', (code, signal) => {
      try {
        const r = JSON.parse(out) as { error?: string };
        resolve(r.error === undefined ? undefined : shortReason(r.error));
      } catch {
        resolve(signal ? `the probe was stopped (${signal})` : `the probe exited with code ${code}`);
      }
    });
  });
}

/** onnxruntime's errors carry source paths and assertion text; the last clause is what a user can act on. */
function shortReason(message: string): string {
  const line = message.split('\n')[0]!.trim();
  const tail = line.split(/: (?=[A-Z])/).pop()!;
  return tail.length > 0 && tail.length < line.length ? tail : line;
}

/**
 * Owns the execution provider choice and the compiled sessions (one per graph variant, built on demand
 * and kept for the life of the model).
 */
export class Runtime {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  private constructor(
    readonly provider: Provider,
    readonly notes: readonly string[],
  ) {}

  /**
   * The provider for a device setting. An explicit device is tried as asked (SwiftShader included: that
   * is how the GPU code path is tested without a GPU) and is an error when it does not work; `auto` tries
   * the platform's GPU providers that can help, each in a child process, and logs its choice and why in
   * one line.
   */
  static async create(device: DeviceSetting, log: Logger = () => {}): Promise<Runtime> {
    if (!(DEVICE_SETTINGS as readonly string[]).includes(device)) {
      throw new UserError(`unknown device '${device}'; use one of ${DEVICE_SETTINGS.join(', ')}`);
    }
    if (device === 'cpu') return new Runtime('cpu', []);
    if (device !== 'auto') {
      const failure = await providerWorks(device, {});
      if (failure !== undefined) throw new UserError(`device '${device}' is not available here (${failure}); use --device auto or cpu`);
      log(`execution provider: ${device} (as asked)`);
      return new Runtime(device, []);
    }
    const notes: string[] = [];
    for (const p of AUTO_ORDER[process.platform] ?? []) {
      const candidate = autoCandidate(p);
      const failure = 'skip' in candidate ? candidate.skip : await providerWorks(p, candidate.env);
      if (failure === undefined && 'env' in candidate) {
        // The engine's own sessions see the drivers the probe saw (the Vulkan loader reads these once).
        Object.assign(process.env, candidate.env);
        log(`execution provider: ${p} (auto${notes.length > 0 ? `; ${notes.join('; ')}` : ''})`);
        return new Runtime(p, notes);
      }
      notes.push(`${p} unavailable: ${failure}${'tried' in candidate && candidate.tried ? ` (${candidate.tried})` : ''}`);
    }
    log(`execution provider: cpu (auto${notes.length > 0 ? `; ${notes.join('; ')}` : ''})`);
    return new Runtime('cpu', notes);
  }

  session(key: string, build: () => Uint8Array): Promise<ort.InferenceSession> {
    let s = this.sessions.get(key);
    if (!s) {
      s = ort.InferenceSession.create(build(), {
        executionProviders: [this.provider],
        graphOptimizationLevel: 'all',
        // The arena would keep each run's peak (a batch of full logits is 150 MB on GPT-2) for good, and
        // memory patterns, cached per input shape, grew the fast executor's memory by a gigabyte over a
        // sweep (its batches take many shapes); without them it also ran 5% faster.
        enableCpuMemArena: false,
        enableMemPattern: false,
        logSeverityLevel: 3,
        // Each session has its own thread pool, whose workers by default spin for milliseconds after a run;
        // the fast executor alternates between several sessions with JavaScript work in between, so those
        // spinning workers took a core from the next run (on 2 cores, GPT-2-small resid_pre ran about 10% and a
        // small model's sweep 25-35% faster without; sweeps of few large runs moved within noise).
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      this.sessions.set(key, s);
    }
    return s;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(all.map(async (s) => (await s).release()));
  }
}
