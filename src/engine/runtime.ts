import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
 * Why `auto` should not even try a provider here, if it should not. A failed attempt is not silent:
 * the native libraries print to the process's stderr, which a user would read as a crash. CUDA needs
 * its provider library, installed only on request (ONNXRUNTIME_NODE_INSTALL=cuda12); WebGPU on Linux
 * needs a Vulkan loader.
 */
function missingPrerequisite(p: Provider): string | undefined {
  if (p === 'cuda') {
    const bin = join(dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
    const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
    return existsSync(join(bin, lib)) ? undefined : `the CUDA provider library is not installed (${lib})`;
  }
  if (p === 'webgpu' && process.platform === 'linux') {
    const dirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
    return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1'))) ? undefined : 'no Vulkan loader (libvulkan.so.1)';
  }
  return undefined;
}

function probeGraph(): Uint8Array {
  const g = new GraphBuilder();
  const x = g.input('x', DataType.FLOAT, [2, 2]);
  g.output('y', g.op('MatMul', [x, x]), DataType.FLOAT, [2, 2]);
  return g.build('probe');
}

async function providerWorks(provider: Provider): Promise<string | undefined> {
  try {
    const s = await ort.InferenceSession.create(probeGraph(), { executionProviders: [provider], logSeverityLevel: 4 });
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [2, 2]) });
    await s.release();
    const y = out.y!.data as Float32Array;
    return y[0] === 7 && y[3] === 22 ? undefined : 'it computed a wrong result on a probe graph';
  } catch (e) {
    return String(e instanceof Error ? e.message : e).split('\n')[0];
  }
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

  static async create(device: DeviceSetting, log: Logger = () => {}): Promise<Runtime> {
    if (!(DEVICE_SETTINGS as readonly string[]).includes(device)) {
      throw new UserError(`unknown device '${device}'; use one of ${DEVICE_SETTINGS.join(', ')}`);
    }
    if (device === 'cpu') return new Runtime('cpu', []);
    const candidates = device === 'auto' ? (AUTO_ORDER[process.platform] ?? []) : [device];
    const notes: string[] = [];
    for (const p of candidates) {
      const failure = (device === 'auto' ? missingPrerequisite(p) : undefined) ?? (await providerWorks(p));
      if (failure === undefined) {
        log(`execution provider: ${p}`);
        return new Runtime(p, notes);
      }
      notes.push(`${p} unavailable: ${failure}`);
      log(`execution provider ${p} unavailable: ${failure}`);
    }
    if (device !== 'auto') {
      throw new UserError(`device '${device}' is not available here (${notes[0]}); use --device auto or cpu`);
    }
    log('execution provider: cpu');
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
