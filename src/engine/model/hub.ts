import { createHash } from 'node:crypto';
import { createReadStream, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, type Stats, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type FileRole, formatLimit, readJsonFile } from '../../common/fileRead';
import { APPEND_NO_FOLLOW, CREATE_NEW, fileErrorCode, replaceFile, writableFolderFix } from '../../common/fileWrite';
import { errnoWords } from '../../common/errorReason';
import { UserError } from '../../common/userError';
import type { ModelLocation } from '../../protocol/result';
import type { Architecture } from '../architectures/architecture';
import { ARCHITECTURES, parseModelConfig } from '../architectures/registry';
import { modelMemoryLimit } from './config';
import { MODEL_CONFIG, SAFETENSORS_INDEX as INDEX_ROLE, SMALL_FILES } from './modelFiles';

export interface HubOptions {
  /** Default: $HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default: $PATCHLENS_CACHE, else ~/.cache/patchlens/hub. */
  cacheDir?: string;
  /** Branch, tag or commit. Default 'main'. */
  revision?: string;
  onProgress?: (p: { file: string; received: number; total: number | undefined }) => void;
  signal?: AbortSignal;
  fetchImpl?: typeof fetch;
  /** A transfer that moves less than STALL_MIN_BYTES in this long is stalled. Default $PATCHLENS_DOWNLOAD_TIMEOUT seconds, else 30 s. */
  stallTimeoutMs?: number;
}

/** Short names people type (each family lists its own), mapped to where those checkpoints live on the hub now. */
const ALIASES: Record<string, string> = Object.assign({}, ...ARCHITECTURES.map((a) => a.aliases ?? {}));

/** The files a tokenizer needs; optional, since a model without them still takes prompts as token ids. */
const TOKENIZER_FILES = ['tokenizer_config.json', 'tokenizer.json'];
const SAFETENSORS_INDEX = 'model.safetensors.index.json';

const MARKER = '.complete';
const MARKER_ROLE: FileRole = { noun: 'model cache record', maxBytes: 1024 * 1024, fix: 'delete it to download the model again' };
const MAX_RETRIES = 3;
const MAX_REDIRECTS = 5;
const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHARD_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.safetensors$/;
const WEIGHT_NAMES = new Set(['model.safetensors', SAFETENSORS_INDEX, 'model_final.pth']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);
/** Less than this much data in a stall window (a byte dripped every few seconds) is a stalled transfer. */
const STALL_MIN_BYTES = 1024;
const DEFAULT_STALL_SECONDS = 30;

/**
 * A verified file in the cache: the sha256 of its content (the hub's own, checked, for LFS files), and
 * the stamp it had when it was hashed. A file whose stamp is unchanged is trusted as is; any change
 * (size aside, which condemns it at once) costs one re-hash, after which the stamp is renewed. So a
 * cached model's reuse reads no weights, yet a file written to in place, even to the same size and with
 * its mtime put back (the ctime and inode still move), is caught before it is used. What no stamp sees
 * (bits rotting on the disk under an unchanged inode) is not caught.
 */
interface CachedFile {
  size: number;
  sha256: string;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

interface Marker {
  repo: string;
  revision: string;
  files: Record<string, CachedFile>;
}

/** Repo id for a hub-style source, or undefined when it doesn't look like one. */
function hubRepoId(source: string): string | undefined {
  const parts = source.split('/');
  if (parts.length > 2 || !parts.every((p) => NAME_PART.test(p) && !p.includes('..'))) return undefined;
  return ALIASES[source] ?? source;
}

/** Where a model came from; `shadowsHubId`: a folder was used although its name is also a hub id (`./gpt2` beside a spec that says "gpt2"). */
export type ResolvedModel = ModelLocation & { readonly shadowsHubId?: boolean };

/**
 * Where the model named by `source` is on disk: a local checkpoint folder as is, or a Hugging Face hub id
 * (`gpt2`, `org/name`) downloaded once into the cache and reused without network afterwards.
 */
export async function resolveModelDir(source: string, opts: HubOptions & { baseDir?: string } = {}): Promise<string> {
  return (await resolveModel(source, opts)).dir;
}

/** resolveModelDir, also saying which kind of model was used. */
export async function resolveModel(source: string, opts: HubOptions & { baseDir?: string } = {}): Promise<ResolvedModel> {
  const local = resolve(opts.baseDir ?? process.cwd(), source);
  const repo = hubRepoId(source);
  if (existsSync(local)) {
    if (statSync(local).isDirectory()) return { dir: local, kind: 'folder', ...(repo ? { shadowsHubId: true } : {}) };
    throw new UserError(`model '${source}' is a file (${local}); give the folder that holds its config.json and model.safetensors`);
  }
  if (!repo) {
    throw new UserError(`model '${source}' is neither an existing folder (looked at ${local}) nor a hub id like 'gpt2' or 'org/name'; check the path`);
  }
  const revision = opts.revision ?? 'main';
  if (!/^[A-Za-z0-9._/-]+$/.test(revision) || revision.includes('..')) {
    throw new UserError(`revision '${revision}' is not a valid branch, tag or commit name; use e.g. 'main'`);
  }
  const cacheRoot = opts.cacheDir ?? process.env.PATCHLENS_CACHE ?? join(homedir(), '.cache', 'patchlens', 'hub');
  const dir = join(cacheRoot, repo.replace('/', '--'), revision.replaceAll('/', '--'));

  const cached = await checkCache(dir, repo, revision);
  if (cached.complete) return { dir, kind: 'hub', repo };

  const endpoint = checkHubEndpoint(opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co');
  const ctx: DownloadContext = {
    fetchImpl: opts.fetchImpl ?? fetch,
    signal: opts.signal,
    onProgress: opts.onProgress,
    endpoint,
    source,
    token: process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN,
    stallMs: opts.stallTimeoutMs ?? stallTimeoutMs(),
  };
  try {
    await download(ctx, dir, repo, revision, cached.verified);
  } catch (e) {
    throw cacheWriteError(e, dir);
  }
  return { dir, kind: 'hub', repo };
}

/** The hub endpoint as given (an http(s) URL, without trailing slashes), or a UserError saying how to set it. */
export function checkHubEndpoint(endpoint: string): string {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new UserError(
      `the hub endpoint '${endpoint}' is not an http(s) URL; give one such as https://huggingface.co (--hub-endpoint, HF_ENDPOINT or the patchlens.hubEndpoint setting)`,
    );
  }
  return endpoint.replace(/\/+$/, '');
}

function stallTimeoutMs(): number {
  const env = process.env.PATCHLENS_DOWNLOAD_TIMEOUT;
  if (env === undefined || env === '') return DEFAULT_STALL_SECONDS * 1000;
  const seconds = Number(env);
  if (!(Number.isFinite(seconds) && seconds > 0)) {
    throw new UserError(`PATCHLENS_DOWNLOAD_TIMEOUT is '${env}'; set it to a positive number of seconds, or unset it for ${DEFAULT_STALL_SECONDS}`);
  }
  return seconds * 1000;
}

/** A file-system error while writing the cache, as what the user can do about it; other errors as they are. */
function cacheWriteError(e: unknown, dir: string): unknown {
  const code = fileErrorCode(e);
  if (code === undefined) return e;
  const path = (e as NodeJS.ErrnoException).path;
  return new UserError(
    `cannot write the model cache ${dir} (${errnoWords(code)}${path && path !== dir ? ` on ${path}` : ''}); ${writableFolderFix(code, 'model cache (--cache DIR, or PATCHLENS_CACHE)')}`,
  );
}

/** Downloads what `verified` lacks of the repo's files into `dir`, then writes the completion marker. */
async function download(ctx: DownloadContext, dir: string, repo: string, revision: string, verified: Record<string, CachedFile>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, MARKER), { force: true });
  distrustUnrecorded(dir, verified);
  const files: Record<string, CachedFile> = {};
  const fetchFile = async (fromRepo: string, name: string, required: boolean): Promise<boolean> => {
    ctx.signal?.throwIfAborted();
    const dest = join(dir, name);
    if (verified[name]) {
      files[name] = verified[name];
      return true;
    }
    const url = `${ctx.endpoint}/${fromRepo}/resolve/${encodeURIComponent(fromRepo === repo ? revision : 'main')}/${name}`;
    const sha256 = await downloadFile(ctx, url, name, dest, required);
    if (sha256 === undefined) return false;
    files[name] = { sha256, ...stamp(lstatSync(dest)) };
    return true;
  };
  // The config first: its family says which files follow, and a model that can't run is refused before
  // gigabytes of weights are fetched.
  await fetchFile(repo, 'config.json', true);
  const { architecture, json } = checkConfig(join(dir, 'config.json'), ctx.source);
  const tokenizerRepo = architecture.tokenizerRepo?.(json) ?? repo;
  for (const name of TOKENIZER_FILES) await fetchFile(tokenizerRepo, name, false);
  for (const name of await weightFiles(architecture, fetchFile, repo, dir)) await fetchFile(repo, name, true);
  writeMarker(dir, { repo, revision, files });
}

function writeMarker(dir: string, marker: Marker): void {
  replaceFile(join(dir, MARKER), JSON.stringify(marker, null, 2));
}

function stamp(st: Stats): Omit<CachedFile, 'sha256'> {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

/**
 * Files under a final name that no marker vouches for (a download that stopped between files, a
 * marker that was discarded) are not trusted as they are: a small file is fetched again, a large one
 * goes back to being a partial file, which the hub's size and sha256 verify when it is resumed.
 */
function distrustUnrecorded(dir: string, verified: Record<string, CachedFile>): void {
  for (const name of readdirSync(dir)) {
    if (!isRepoFileName(name) || verified[name]) continue;
    const path = join(dir, name);
    if (SMALL_FILES[name] || !lstatSync(path).isFile() || existsSync(`${path}.partial`)) rmSync(path, { recursive: true, force: true });
    else renameSync(path, `${path}.partial`);
  }
}

function checkConfig(path: string, source: string): { architecture: Architecture; json: Record<string, unknown> } {
  let json: unknown;
  try {
    json = readJsonFile(path, MODEL_CONFIG);
  } catch {
    rmSync(path, { force: true });
    throw new UserError(`the config.json of model '${source}' from the hub is not JSON; check the model id`);
  }
  return { architecture: parseModelConfig(json, path).architecture, json: json as Record<string, unknown> };
}

/**
 * The weight files still to fetch: a TransformerLens state dict, model.safetensors, or (when the repo has
 * no single file) the index and the shards it names.
 */
async function weightFiles(
  architecture: Architecture,
  fetchFile: (repo: string, name: string, required: boolean) => Promise<boolean>,
  repo: string,
  dir: string,
): Promise<string[]> {
  if (architecture.weightFormat === 'pth') return ['model_final.pth'];
  if (await fetchFile(repo, 'model.safetensors', false)) return [];
  await fetchFile(repo, SAFETENSORS_INDEX, true);
  let map: unknown;
  try {
    map = (readJsonFile(join(dir, SAFETENSORS_INDEX), INDEX_ROLE) as { weight_map?: unknown }).weight_map;
  } catch {
    map = undefined;
  }
  const shards = typeof map === 'object' && map !== null ? [...new Set(Object.values(map))] : [];
  // Shard names come from the hub: only plain *.safetensors names in the repo's own folder are fetched.
  if (shards.length === 0 || !shards.every((s) => typeof s === 'string' && SHARD_NAME.test(s))) {
    rmSync(join(dir, SAFETENSORS_INDEX), { force: true });
    throw new UserError(`the ${SAFETENSORS_INDEX} of ${repo} has no usable weight_map (plain *.safetensors shard names); check the model id`);
  }
  return (shards as string[]).sort();
}

/** A name PatchLens itself downloads into a repo's cache folder: the only names a marker may list. */
function isRepoFileName(name: string): boolean {
  return name === 'config.json' || TOKENIZER_FILES.includes(name) || WEIGHT_NAMES.has(name) || SHARD_NAME.test(name);
}

function isCachedFile(v: unknown): v is CachedFile {
  const f = v as CachedFile;
  return (
    typeof v === 'object' &&
    v !== null &&
    Number.isSafeInteger(f.size) &&
    typeof f.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(f.sha256) &&
    [f.mtimeMs, f.ctimeMs, f.ino].every((n) => typeof n === 'number' && Number.isFinite(n))
  );
}

/**
 * What the cache folder holds that its marker vouches for. The marker is read back from disk, so it is
 * not trusted either: one that names anything but the files PatchLens downloads, inside this folder, is
 * discarded whole (and none of the files it names is touched). A listed file that is missing, no longer
 * a plain file, of another size, or of another content is removed and fetched again.
 */
async function checkCache(dir: string, repo: string, revision: string): Promise<{ complete: boolean; verified: Record<string, CachedFile> }> {
  const none = { complete: false, verified: {} };
  const markerPath = join(dir, MARKER);
  if (!existsSync(markerPath)) return none;
  let m: Marker;
  try {
    m = readJsonFile(markerPath, MARKER_ROLE) as Marker;
  } catch {
    return none;
  }
  const names = typeof m?.files === 'object' && m.files !== null ? Object.keys(m.files) : [];
  const trusted = m.repo === repo && m.revision === revision && names.every((n) => isRepoFileName(n) && dirname(resolve(dir, n)) === resolve(dir) && isCachedFile(m.files[n]));
  if (!trusted) {
    rmSync(markerPath, { force: true });
    return none;
  }
  const verified: Record<string, CachedFile> = {};
  let renewed = false;
  for (const name of names) {
    const recorded = m.files[name]!;
    const path = join(dir, name);
    let st: Stats | undefined;
    try {
      st = lstatSync(path);
    } catch {
      st = undefined;
    }
    if (!st?.isFile() || st.size !== recorded.size) {
      if (st) rmSync(path, { recursive: true, force: true });
      continue;
    }
    const now = stamp(st);
    if (now.mtimeMs === recorded.mtimeMs && now.ctimeMs === recorded.ctimeMs && now.ino === recorded.ino) {
      verified[name] = recorded;
      continue;
    }
    // Touched since it was verified: its content decides.
    if ((await sha256File(path)) !== recorded.sha256) {
      rmSync(path, { force: true });
      continue;
    }
    verified[name] = { ...recorded, ...now };
    renewed = true;
  }
  const complete = names.length === Object.keys(verified).length && 'config.json' in verified && names.some((n) => WEIGHT_NAMES.has(n));
  if (complete && renewed) {
    try {
      writeMarker(dir, { repo, revision, files: verified });
    } catch {
      // A read-only cache still serves its models; the re-hash is simply done again next time.
    }
  }
  return { complete, verified };
}

interface DownloadContext {
  fetchImpl: typeof fetch;
  signal: AbortSignal | undefined;
  onProgress: HubOptions['onProgress'];
  endpoint: string;
  source: string;
  token: string | undefined;
  stallMs: number;
}

/** Thrown inside one attempt for failures that a retry (resuming) can fix. */
class TransientError extends Error {
  /** True when no response came at all (as opposed to a transfer cut short). */
  connect = false;
}

function errorCode(e: unknown): string | undefined {
  for (let c: unknown = e, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** The most specific reason in an error chain: fetch's own message is just 'fetch failed'. */
function describe(e: unknown): string {
  const code = errorCode(e);
  if (code) return code;
  let msg = (e as Error)?.message ?? String(e);
  for (let c = (e as { cause?: unknown })?.cause, i = 0; c && i < 5; c = (c as { cause?: unknown }).cause, i++) {
    if (typeof (c as Error).message === 'string' && (c as Error).message) msg = (c as Error).message;
  }
  return msg;
}

function sha256FromEtag(v: string | null): string | undefined {
  if (!v) return undefined;
  const s = v.replace(/^W\//, '').replace(/"/g, '').trim().toLowerCase();
  return /^[0-9a-f]{64}$/.test(s) ? s : undefined;
}

/** How much of a file a partial file holds; anything but a plain file there (a planted symlink) is removed. */
function partialSize(p: string): number {
  let st: Stats;
  try {
    st = lstatSync(p);
  } catch {
    return 0;
  }
  if (st.isFile()) return st.size;
  rmSync(p, { recursive: true, force: true });
  return 0;
}

/** The most bytes a file may have when the hub does not say: its role's cap, or what a loadable model's weights could be. */
function sizeCap(name: string): { bytes: number; why: string } {
  const role = SMALL_FILES[name];
  if (role) return { bytes: role.maxBytes, why: `the most a ${role.noun} holds` };
  const limit = modelMemoryLimit();
  // Float64 weights are twice their float32 size in memory.
  return { bytes: 2 * limit.bytes, why: `twice ${limit.what}` };
}

/**
 * Fetches one file into `dest` through `dest.partial`, resuming and retrying interrupted transfers.
 * Returns the sha256 of what it fetched (the hub's, verified, when it publishes one), or undefined for
 * an optional file the hub doesn't have. A partial file is kept for a later run only when it can
 * resume: a large file whose sha256 the hub publishes, which will verify the resumed whole.
 */
async function downloadFile(ctx: DownloadContext, url: string, name: string, dest: string, required: boolean): Promise<string | undefined> {
  const partial = `${dest}.partial`;
  let last: TransientError | undefined;
  // Set by each attempt once the hub has answered: whether it publishes this file's sha256.
  const hub = { publishesSha: false };
  try {
    for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
      ctx.signal?.throwIfAborted();
      if (attempt > 0) await sleep(200 * attempt, ctx.signal);
      try {
        const r = await attemptDownload(ctx, url, name, partial, hub);
        if (r === 'missing') {
          rmSync(partial, { force: true });
          if (!required) return undefined;
          throw new UserError(`model '${ctx.source}' not found on the hub at ${ctx.endpoint} (${url} answered 404); check the id or give a local folder`);
        }
        renameSync(partial, dest);
        return r;
      } catch (e) {
        if (!(e instanceof TransientError)) throw e;
        last = e;
      }
    }
  } catch (e) {
    if (!hub.publishesSha || SMALL_FILES[name]) rmSync(partial, { force: true });
    throw e;
  }
  if (!hub.publishesSha || SMALL_FILES[name]) rmSync(partial, { force: true });
  if (last?.connect) {
    throw new UserError(
      `cannot reach the Hugging Face hub at ${ctx.endpoint} (${last.message}, ${MAX_RETRIES + 1} tries); give a local model folder (config.json + model.safetensors) instead, or set HF_ENDPOINT to a reachable hub mirror`,
    );
  }
  const next = existsSync(partial) ? `rerun to resume from ${partialSize(partial)} bytes` : 'check the network and the hub endpoint, then rerun';
  throw new UserError(`downloading ${name} of model '${ctx.source}' from ${ctx.endpoint} failed ${MAX_RETRIES + 1} times (${last?.message}); ${next}`);
}

/** One request for a file: its sha256 once it is whole in `partial`, or 'missing'. */
async function attemptDownload(ctx: DownloadContext, url: string, name: string, partial: string, hub: { publishesSha: boolean }): Promise<string | 'missing'> {
  const offset = partialSize(partial);
  // Aborted by the stall watchdog (a retry) or by the user's signal (the end).
  const stalled = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, stalled.signal]) : stalled.signal;
  let window = 0;
  const watchdog = setInterval(() => {
    if (window < STALL_MIN_BYTES) stalled.abort(new TransientError(`stalled: ${window} bytes in the last ${ctx.stallMs / 1000} s`));
    window = 0;
  }, ctx.stallMs);
  try {
    let res: Response;
    let linkedSha: string | undefined;
    let linkedSize: number | undefined;
    try {
      ({ res, linkedSha, linkedSize } = await request(ctx, url, offset, signal));
    } catch (e) {
      if (stalled.signal.aborted && !ctx.signal?.aborted) throw stalled.signal.reason;
      throw e;
    }
    const expectedSha = linkedSha ?? sha256FromEtag(res.headers.get('etag'));
    hub.publishesSha = expectedSha !== undefined;

    if (res.status === 404) {
      await res.body?.cancel();
      return 'missing';
    }
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw new UserError(
        `model '${ctx.source}' is not available on the hub at ${ctx.endpoint} (HTTP ${res.status} for ${name}: it does not exist or is private/gated); check the id, set HF_TOKEN, or give a local folder`,
      );
    }
    if (res.status === 416) {
      await res.body?.cancel();
      // A run that stopped between the last byte and the rename left a whole file: verify, don't refetch.
      const whole = /^bytes \*\/(\d+)$/.exec(res.headers.get('content-range') ?? '');
      if (whole && Number(whole[1]) === offset && (linkedSize === undefined || linkedSize === offset)) {
        return await verifySha(partial, expectedSha);
      }
      // Otherwise the partial file is not a prefix the server can continue (the file changed): start over.
      rmSync(partial, { force: true });
      throw new TransientError(`server refused to resume at byte ${offset}`);
    }
    if (res.status >= 500) {
      await res.body?.cancel();
      throw new TransientError(`HTTP ${res.status}`);
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new UserError(`the hub at ${ctx.endpoint} answered HTTP ${res.status} for ${url}; check the model id and the hub endpoint`);
    }

    let start = 0;
    let total: number | undefined;
    const len = res.headers.get('content-length');
    const encoded = (res.headers.get('content-encoding') ?? 'identity') !== 'identity';
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== offset) {
        await res.body?.cancel();
        rmSync(partial, { force: true });
        throw new TransientError(`server resumed at the wrong offset (${res.headers.get('content-range')})`);
      }
      start = offset;
      if (m[3] !== '*') total = Number(m[3]);
    } else if (len !== null && !encoded) total = Number(len);
    if (linkedSize !== undefined) {
      if (total !== undefined && total !== linkedSize) {
        await res.body?.cancel();
        throw new TransientError(`server sent ${total} bytes for a file of ${linkedSize}`);
      }
      total = linkedSize;
    }
    const cap = sizeCap(name);
    if (total !== undefined && total > cap.bytes && SMALL_FILES[name]) {
      await res.body?.cancel();
      rmSync(partial, { force: true });
      throw new UserError(
        `the hub at ${ctx.endpoint} announces ${name} of model '${ctx.source}' as ${total} bytes, more than ${formatLimit(cap.bytes)} (${cap.why}); check the model id and the hub endpoint`,
      );
    }

    // A new file is created afresh (never through a symlink planted at its name); a resumed one is appended to.
    if (start === 0) rmSync(partial, { force: true });
    const fh = await open(partial, start > 0 ? APPEND_NO_FOLLOW : CREATE_NEW, 0o644);
    let received = start;
    ctx.onProgress?.({ file: name, received, total });
    try {
      if (!res.body) throw new TransientError('empty response body');
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        received += chunk.byteLength;
        window += chunk.byteLength;
        // Bounded while it arrives: more than announced, or (when nothing is announced) more than the cap.
        if (total !== undefined && received > total) {
          await fh.close().catch(() => undefined);
          rmSync(partial, { force: true });
          throw new TransientError(`received more than the ${total} bytes announced`);
        }
        if (received > cap.bytes) {
          await fh.close().catch(() => undefined);
          rmSync(partial, { force: true });
          throw new UserError(
            `the hub at ${ctx.endpoint} sent more than ${formatLimit(cap.bytes)} for ${name} of model '${ctx.source}' (${cap.why}) without announcing its size; the partial file was deleted; check the model id and the hub endpoint`,
          );
        }
        await fh.write(chunk);
        ctx.onProgress?.({ file: name, received, total });
      }
    } catch (e) {
      if (e instanceof TransientError || e instanceof UserError) throw e;
      if (ctx.signal?.aborted) throw ctx.signal.reason;
      if (stalled.signal.aborted) throw stalled.signal.reason;
      throw new TransientError(`connection closed after ${received} bytes (${describe(e)})`);
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (total !== undefined && received !== total) throw new TransientError(`received ${received} of ${total} bytes`);
    return await verifySha(partial, expectedSha);
  } finally {
    clearInterval(watchdog);
  }
}

/** The file's sha256, which must be `expected` when the hub published one. */
async function verifySha(partial: string, expected: string | undefined): Promise<string> {
  const actual = await sha256File(partial);
  if (expected && actual !== expected) {
    rmSync(partial, { force: true });
    throw new TransientError(`sha256 mismatch (expected ${expected}, got ${actual})`);
  }
  return actual;
}

/**
 * GET with redirects followed by hand: the hub puts the file's sha256 and size (x-linked-etag,
 * x-linked-size) on its redirect to the CDN, which fetch's automatic redirects would hide.
 */
async function request(ctx: DownloadContext, url: string, offset: number, signal: AbortSignal): Promise<{ res: Response; linkedSha?: string; linkedSize?: number }> {
  let linkedSha: string | undefined;
  let linkedSize: number | undefined;
  let current = url;
  const endpointOrigin = new URL(ctx.endpoint).origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'patchlens' };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    // The token only ever goes to the hub itself, never to the CDN it redirects to.
    if (ctx.token && new URL(current).origin === endpointOrigin) headers.authorization = `Bearer ${ctx.token}`;
    let res: Response;
    try {
      res = await ctx.fetchImpl(current, { headers, redirect: 'manual', signal });
    } catch (e) {
      if (signal.aborted) throw signal.reason;
      const code = errorCode(e);
      if (code && UNREACHABLE_CODES.has(code)) {
        throw new UserError(
          `the Hugging Face hub at ${new URL(current).origin} is unreachable (${code}); give a local model folder (config.json + model.safetensors) instead, or set HF_ENDPOINT to a reachable hub mirror`,
        );
      }
      const t = new TransientError(describe(e));
      t.connect = true;
      throw t;
    }
    linkedSha ??= sha256FromEtag(res.headers.get('x-linked-etag'));
    const ls = res.headers.get('x-linked-size');
    if (linkedSize === undefined && ls !== null && /^\d+$/.test(ls)) linkedSize = Number(ls);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      current = new URL(location, current).toString();
      continue;
    }
    return { res, linkedSha, linkedSize };
  }
  throw new UserError(`too many redirects fetching ${url}; check the hub endpoint ${ctx.endpoint}`);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolveSleep, reject) => {
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveSleep();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
