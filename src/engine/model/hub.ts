import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, writeFile, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { UserError } from '../../common/userError';
import type { Architecture } from '../architectures/architecture';
import { ARCHITECTURES, parseModelConfig } from '../architectures/registry';

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
}

/** Short names people type (each family lists its own), mapped to where those checkpoints live on the hub now. */
const ALIASES: Record<string, string> = Object.assign({}, ...ARCHITECTURES.map((a) => a.aliases ?? {}));

/** The files a tokenizer needs; optional, since a model without them still takes prompts as token ids. */
const TOKENIZER_FILES = ['tokenizer_config.json', 'tokenizer.json'];
const SAFETENSORS_INDEX = 'model.safetensors.index.json';

const MARKER = '.complete';
const MAX_RETRIES = 3;
const MAX_REDIRECTS = 5;
const NAME_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

interface Marker {
  repo: string;
  revision: string;
  files: Record<string, number>;
}

/** Repo id for a hub-style source, or undefined when it doesn't look like one. */
function hubRepoId(source: string): string | undefined {
  const parts = source.split('/');
  if (parts.length > 2 || !parts.every((p) => NAME_PART.test(p) && !p.includes('..'))) return undefined;
  return ALIASES[source] ?? source;
}

/**
 * Where the model named by `source` is on disk: a local checkpoint folder as is, or a Hugging Face hub id
 * (`gpt2`, `org/name`) downloaded once into the cache and reused without network afterwards.
 */
export async function resolveModelDir(source: string, opts: HubOptions & { baseDir?: string } = {}): Promise<string> {
  const local = resolve(opts.baseDir ?? process.cwd(), source);
  if (existsSync(local)) {
    if (statSync(local).isDirectory()) return local;
    throw new UserError(`model '${source}' is a file (${local}); give the folder that holds its config.json and model.safetensors`);
  }
  const repo = hubRepoId(source);
  if (!repo) {
    throw new UserError(
      `model '${source}' is neither an existing folder (looked at ${local}) nor a hub id like 'gpt2' or 'org/name'; check the path`,
    );
  }
  const revision = opts.revision ?? 'main';
  if (!/^[A-Za-z0-9._/-]+$/.test(revision) || revision.includes('..')) {
    throw new UserError(`revision '${revision}' is not a valid branch, tag or commit name; use e.g. 'main'`);
  }
  const endpoint = (opts.endpoint ?? process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const cacheRoot = opts.cacheDir ?? process.env.PATCHLENS_CACHE ?? join(homedir(), '.cache', 'patchlens', 'hub');
  const dir = join(cacheRoot, repo.replace('/', '--'), revision.replaceAll('/', '--'));

  if (isComplete(dir, repo, revision)) return dir;

  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new UserError(
      `cannot create the model cache folder ${dir} (${errorCode(e) ?? (e as Error).message}); set PATCHLENS_CACHE to a writable folder`,
    );
  }
  rmSync(join(dir, MARKER), { force: true });
  const ctx: DownloadContext = {
    fetchImpl: opts.fetchImpl ?? fetch,
    signal: opts.signal,
    onProgress: opts.onProgress,
    endpoint,
    source,
    token: process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN,
  };
  const sizes: Record<string, number> = {};
  const fetchFile = async (fromRepo: string, name: string, required: boolean): Promise<boolean> => {
    ctx.signal?.throwIfAborted();
    const dest = join(dir, name);
    const url = `${endpoint}/${fromRepo}/resolve/${encodeURIComponent(fromRepo === repo ? revision : 'main')}/${name}`;
    // A file under its final name was verified before it was renamed, so an earlier run that stopped
    // between files doesn't fetch it again.
    if (!existsSync(dest) && !(await downloadFile(ctx, url, name, dest, required))) return false;
    sizes[name] = statSync(dest).size;
    return true;
  };
  // The config first: its family says which files follow, and a model that can't run is refused before
  // gigabytes of weights are fetched.
  await fetchFile(repo, 'config.json', true);
  const { architecture, json } = checkConfig(join(dir, 'config.json'), source);
  const tokenizerRepo = architecture.tokenizerRepo?.(json) ?? repo;
  for (const name of TOKENIZER_FILES) await fetchFile(tokenizerRepo, name, false);
  for (const name of await weightFiles(architecture, fetchFile, repo, dir)) await fetchFile(repo, name, true);
  const marker: Marker = { repo, revision, files: sizes };
  const tmp = join(dir, `${MARKER}.tmp-${process.pid}`);
  await writeFile(tmp, JSON.stringify(marker, null, 2));
  await rename(tmp, join(dir, MARKER));
  return dir;
}

function checkConfig(path: string, source: string): { architecture: Architecture; json: Record<string, unknown> } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
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
    map = (JSON.parse(readFileSync(join(dir, SAFETENSORS_INDEX), 'utf8')) as { weight_map?: unknown }).weight_map;
  } catch {
    map = undefined;
  }
  const shards = typeof map === 'object' && map !== null ? [...new Set(Object.values(map))] : [];
  // Shard names come from the hub: only plain *.safetensors names in the repo's own folder are fetched.
  if (shards.length === 0 || !shards.every((s) => typeof s === 'string' && NAME_PART.test(s) && s.endsWith('.safetensors'))) {
    rmSync(join(dir, SAFETENSORS_INDEX), { force: true });
    throw new UserError(`the ${SAFETENSORS_INDEX} of ${repo} has no usable weight_map (plain *.safetensors shard names); check the model id`);
  }
  return (shards as string[]).sort();
}

function isComplete(dir: string, repo: string, revision: string): boolean {
  const markerPath = join(dir, MARKER);
  if (!existsSync(markerPath)) return false;
  let m: Marker;
  try {
    m = JSON.parse(readFileSync(markerPath, 'utf8')) as Marker;
  } catch {
    return false;
  }
  if (m.repo !== repo || m.revision !== revision || typeof m.files !== 'object' || m.files === null) return false;
  const weights = Object.keys(m.files).some((n) => n === 'model.safetensors' || n === SAFETENSORS_INDEX || n.endsWith('.pth'));
  if (!('config.json' in m.files) || !weights) return false;
  for (const [name, size] of Object.entries(m.files)) {
    const p = join(dir, name);
    // A file that changed size since it was verified is not trusted: it is fetched again.
    if (!existsSync(p) || statSync(p).size !== size) {
      rmSync(p, { force: true });
      return false;
    }
  }
  return true;
}

interface DownloadContext {
  fetchImpl: typeof fetch;
  signal: AbortSignal | undefined;
  onProgress: HubOptions['onProgress'];
  endpoint: string;
  source: string;
  token: string | undefined;
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

function fileSize(p: string): number {
  return existsSync(p) ? statSync(p).size : 0;
}

/**
 * Fetches one file into `dest` through `dest.partial`, resuming and retrying interrupted transfers.
 * Returns false for an optional file the hub doesn't have.
 */
async function downloadFile(ctx: DownloadContext, url: string, name: string, dest: string, required: boolean): Promise<boolean> {
  const partial = `${dest}.partial`;
  let last: TransientError | undefined;
  for (let attempt = 0; attempt <= MAX_RETRIES; attempt++) {
    ctx.signal?.throwIfAborted();
    if (attempt > 0) await sleep(200 * attempt, ctx.signal);
    try {
      const r = await attemptDownload(ctx, url, name, partial);
      if (r === 'missing') {
        rmSync(partial, { force: true });
        if (!required) return false;
        throw new UserError(
          `model '${ctx.source}' not found on the hub at ${ctx.endpoint} (${url} answered 404); check the id or give a local folder`,
        );
      }
      renameSync(partial, dest);
      return true;
    } catch (e) {
      if (!(e instanceof TransientError)) throw e;
      last = e;
    }
  }
  if (last?.connect) {
    throw new UserError(
      `cannot reach the Hugging Face hub at ${ctx.endpoint} (${last.message}, ${MAX_RETRIES + 1} tries); give a local model folder (config.json + model.safetensors) instead, or set HF_ENDPOINT to a reachable hub mirror`,
    );
  }
  throw new UserError(
    `downloading ${name} of model '${ctx.source}' from ${ctx.endpoint} failed ${MAX_RETRIES + 1} times (${last?.message}); rerun to resume from ${fileSize(partial)} bytes`,
  );
}

async function attemptDownload(ctx: DownloadContext, url: string, name: string, partial: string): Promise<'ok' | 'missing'> {
  const offset = fileSize(partial);
  const { res, linkedSha, linkedSize } = await request(ctx, url, offset);

  if (res.status === 404) return 'missing';
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
      await verifySha(partial, linkedSha ?? sha256FromEtag(res.headers.get('etag')));
      return 'ok';
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

  const fh = await open(partial, start > 0 ? 'a' : 'w');
  let received = start;
  ctx.onProgress?.({ file: name, received, total });
  try {
    if (!res.body) throw new TransientError('empty response body');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      await fh.write(chunk);
      received += chunk.byteLength;
      ctx.onProgress?.({ file: name, received, total });
    }
  } catch (e) {
    if (e instanceof TransientError) throw e;
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw new TransientError(`connection closed after ${received} bytes (${describe(e)})`);
  } finally {
    await fh.close();
  }
  if (total !== undefined && received !== total) {
    // More bytes than announced means the partial file was not a prefix of this file: never use it.
    if (received > total) rmSync(partial, { force: true });
    throw new TransientError(`received ${received} of ${total} bytes`);
  }
  await verifySha(partial, linkedSha ?? sha256FromEtag(res.headers.get('etag')));
  return 'ok';
}

async function verifySha(partial: string, expected: string | undefined): Promise<void> {
  if (!expected) return;
  const actual = await sha256File(partial);
  if (actual !== expected) {
    rmSync(partial, { force: true });
    throw new TransientError(`sha256 mismatch (expected ${expected}, got ${actual})`);
  }
}

/**
 * GET with redirects followed by hand: the hub puts the file's sha256 and size (x-linked-etag,
 * x-linked-size) on its redirect to the CDN, which fetch's automatic redirects would hide.
 */
async function request(ctx: DownloadContext, url: string, offset: number): Promise<{ res: Response; linkedSha?: string; linkedSize?: number }> {
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
      res = await ctx.fetchImpl(current, { headers, redirect: 'manual', signal: ctx.signal });
    } catch (e) {
      if (ctx.signal?.aborted) throw ctx.signal.reason;
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
