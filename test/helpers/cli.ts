import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const BIN = resolve(__dirname, '../../bin/patchlens.js');
const RSS_PROBE = pathToFileURL(resolve(__dirname, 'rssProbe.mjs')).href;

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;

/** Runs the built CLI (dist/cli.js, through bin/patchlens.js) as a user would. */
export function runCli(args: string[], cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface CliRun {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time from spawn to exit. */
  readonly ms: number;
  /** The CLI process's peak resident set size, MiB (undefined when it died before it could say). */
  readonly peakRssMiB: number | undefined;
  /** Killed by the harness after timeoutMs: the run hung. */
  readonly timedOut: boolean;
}

export interface CliProcess {
  readonly child: ChildProcess;
  /** What it has written to stderr so far. */
  stderr(): string;
  /** Resolves once stderr matches `re` (rejects if the process ends first). */
  waitForStderr(re: RegExp): Promise<void>;
  readonly done: Promise<CliRun>;
}

export interface CliOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
  /** The harness kills the process (SIGKILL) after this long; the run then counts as hung. Default 60 s. */
  readonly timeoutMs?: number;
  /** Run as this user and group (the tests use nobody, when they run as root, for folders root may always write). */
  readonly uid?: number;
  readonly gid?: number;
  readonly stdin?: 'ignore' | 'pipe' | number;
}

/**
 * Starts `command` (a shell line, run by bash) in which `$PATCHLENS` stands for the CLI, started as
 * `patchlens` would be, with its peak memory recorded; returns at once.
 */
export function startCliShell(command: string, opts: CliOptions = {}): CliProcess {
  const probeDir = mkdtempSync(join(tmpdir(), 'patchlens-rss-'));
  if (opts.uid !== undefined) chmodSync(probeDir, 0o777);
  const rssFile = join(probeDir, 'rss');
  const cli = [process.execPath, '--import', RSS_PROBE, BIN].map(quote).join(' ');
  const env = { ...process.env, ...opts.env, PATCHLENS_TEST_RSS_FILE: rssFile };
  const started = Date.now();
  const child = spawn('bash', ['-c', command.replaceAll('$PATCHLENS', cli)], {
    cwd: opts.cwd,
    env,
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    // Its own process group, so that a hung run is killed whole (bash and the CLI under it).
    detached: true,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid ?? opts.uid } : {}),
  });
  let stdout = '';
  let stderr = '';
  const waiters: { re: RegExp; resolve: () => void; reject: (e: Error) => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...waiters]) {
      if (!w.re.test(stderr)) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }, opts.timeoutMs ?? 60_000);
  const done = new Promise<CliRun>((res) =>
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const ms = Date.now() - started;
      const rss = existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) / 1024 : undefined;
      rmSync(probeDir, { recursive: true, force: true });
      for (const w of waiters.splice(0)) w.reject(new Error(`the process ended before stderr matched ${w.re}: ${stderr}`));
      res({ status, signal, stdout, stderr, ms, peakRssMiB: rss, timedOut });
    }),
  );
  return {
    child,
    stderr: () => stderr,
    waitForStderr: (re) => (re.test(stderr) ? Promise.resolve() : new Promise((resolve, reject) => waiters.push({ re, resolve, reject }))),
    done,
  };
}

/** startCliShell for `patchlens ARGS...` with the arguments quoted; `exec` so that signals reach the CLI itself. */
export function startCli(args: string[], opts: CliOptions = {}): CliProcess {
  return startCliShell(`exec $PATCHLENS ${args.map(quote).join(' ')}`, opts);
}
