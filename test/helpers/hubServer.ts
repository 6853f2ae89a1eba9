import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface HubFault {
  file: string;
  /** Bytes of the body sent before the socket is destroyed. */
  afterBytes: number;
  /** How many requests for the file fail this way (default 1; Infinity: every one). */
  times?: number;
}

export interface HubServerOptions {
  /** Drop the connection mid-body, like a flaky network. */
  fail?: HubFault;
  /** Files at least this big are served like the hub serves LFS files: sha256 etag, x-linked-*, a redirect. */
  lfsThreshold?: number;
  /** Whether LFS files go through a 302 to a /cdn/ URL, as on the real hub (default true). */
  redirectLfs?: boolean;
  /** Ignore Range headers and always answer 200 with the whole file. */
  noRange?: boolean;
  /** Serve wrong x-linked-etag values, so a checksum check has something to catch. */
  wrongSha?: boolean;
  /** Announce LFS files as this many bytes bigger (x-linked-size) than they are. */
  linkedSizeDelta?: number;
  /** Send bodies without Content-Length (chunked), so only x-linked-size tells the real size. */
  chunked?: boolean;
  /** Serve this file as an endless stream (chunked, no size announced), as a broken or hostile mirror might. */
  endless?: string;
  /** Serve this file one byte every `everyMs`, as a stalled connection does. */
  drip?: { file: string; everyMs: number };
  /** Accept requests for this file and never answer. */
  silent?: string;
  /** Send `afterBytes` of this file, then hold the rest until `release` settles. */
  hold?: { file: string; afterBytes: number; release: Promise<void> };
}

export interface HubRequest {
  method: string;
  path: string;
  range: string | undefined;
  status: number;
}

export interface HubServer {
  /** http://127.0.0.1:PORT, to pass as the hub endpoint. */
  readonly endpoint: string;
  /** Every request, in order: tests assert on it (e.g. none at all when a cached model is reused). */
  readonly requests: HubRequest[];
  /** Mutable: tests change faults between calls. */
  options: HubServerOptions;
  close(): Promise<void>;
}

/**
 * Serves `root/{org}/{name}/{file}` (or `root/{name}/{file}`) at
 * `/{org}/{name}/resolve/{revision}/{file}` the way huggingface.co does, for any revision.
 */
export async function startHubServer(root: string, options: HubServerOptions = {}): Promise<HubServer> {
  const requests: HubRequest[] = [];
  const failuresSoFar = new Map<string, number>();
  const server = createServer();
  const hub: HubServer = {
    endpoint: '',
    requests,
    options,
    close: () =>
      new Promise((res) => {
        server.closeAllConnections();
        server.close(() => res());
      }),
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const o = hub.options;
    const url = new URL(req.url ?? '/', 'http://x');
    const range = req.headers.range;
    const log = (status: number) => requests.push({ method: req.method ?? 'GET', path: url.pathname, range, status });
    const notFound = () => {
      log(404);
      res.writeHead(404, { 'content-type': 'text/plain', 'x-error-code': 'EntryNotFound' });
      res.end('Entry not found');
    };

    // /cdn/{repo path}/{file}: where LFS files are redirected to.
    const cdn = url.pathname.startsWith('/cdn/');
    const rel = cdn ? url.pathname.slice(5) : url.pathname.slice(1);
    const parts = rel.split('/').map(decodeURIComponent);
    let repo: string[];
    let file: string;
    if (cdn) {
      file = parts.pop() ?? '';
      repo = parts;
    } else {
      const i = parts.indexOf('resolve');
      if (i < 1 || i > 2 || parts.length !== i + 3) return notFound();
      repo = parts.slice(0, i);
      file = parts[i + 2]!;
    }
    if ([...repo, file].some((p) => p === '' || p === '..' || p.includes('\\'))) return notFound();
    const path = join(root, ...repo, file);
    if (!existsSync(path) || !statSync(path).isFile()) return notFound();

    if (o.silent === file) {
      log(0);
      return;
    }
    if (o.endless === file) {
      log(200);
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    const data = readFileSync(path);
    const lfs = data.length >= (o.lfsThreshold ?? 1024);
    const sha = createHash('sha256').update(data).digest('hex');
    const shaHeader = o.wrongSha ? '0'.repeat(64) : sha;
    if (lfs && !cdn && (o.redirectLfs ?? true)) {
      log(302);
      res.writeHead(302, {
        location: `/cdn/${repo.join('/')}/${file}`,
        'x-linked-etag': `"${shaHeader}"`,
        'x-linked-size': String(data.length + (o.linkedSizeDelta ?? 0)),
        'content-length': '0',
      });
      res.end();
      return;
    }
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'accept-ranges': o.noRange ? 'none' : 'bytes',
      // Small files carry a git blob sha1 etag on the real hub; it must not be mistaken for a sha256.
      etag: lfs ? `"${shaHeader}"` : `"${createHash('sha1').update(data).digest('hex')}"`,
    };
    if (lfs && !(o.redirectLfs ?? true)) {
      headers['x-linked-etag'] = `"${shaHeader}"`;
      headers['x-linked-size'] = String(data.length + (o.linkedSizeDelta ?? 0));
    }
    let start = 0;
    let status = 200;
    const m = /^bytes=(\d+)-$/.exec(range ?? '');
    if (m && !o.noRange) {
      start = Number(m[1]);
      if (start >= data.length) {
        log(416);
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    const body = data.subarray(start);
    if (!o.chunked) headers['content-length'] = String(body.length);
    log(status);
    res.writeHead(status, headers);

    if (o.drip?.file === file) {
      const { everyMs } = o.drip;
      let i = 0;
      const t = setInterval(() => {
        if (res.destroyed || i >= body.length) return clearInterval(t);
        res.write(body.subarray(i, ++i));
      }, everyMs);
      res.on('close', () => clearInterval(t));
      return;
    }
    if (o.hold?.file === file) {
      const { afterBytes, release } = o.hold;
      res.write(body.subarray(0, afterBytes));
      void release.then(() => res.destroyed || res.end(body.subarray(afterBytes)));
      return;
    }
    const fault = o.fail;
    const failed = failuresSoFar.get(file) ?? 0;
    if (fault && fault.file === file && failed < (fault.times ?? 1)) {
      failuresSoFar.set(file, failed + 1);
      // Flush exactly afterBytes, then cut the connection as a dropped network would.
      res.write(body.subarray(0, Math.min(fault.afterBytes, body.length)), () => {
        setTimeout(() => req.socket.destroy(), 20);
      });
      return;
    }
    res.end(body);
  };
  server.on('request', handle);
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as AddressInfo).port;
  (hub as { endpoint: string }).endpoint = `http://127.0.0.1:${port}`;
  return hub;
}
