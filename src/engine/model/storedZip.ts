/**
 * The directory of a zip archive whose entries are stored uncompressed, as torch.save writes its .pth files:
 * each entry's data is then a byte range of the file, read on demand. Written here rather than taken from
 * npm because the checkpoint loader is synchronous and reads only the ranges of the tensors it wants: yauzl
 * streams asynchronously, adm-zip reads the whole archive into memory first. Every offset and size comes
 * from the file, so each is checked against the file's size before anything is read or allocated.
 */
import { readSync } from 'node:fs';

export interface ZipEntry {
  readonly name: string;
  /** 0: stored; anything else is compressed, which torch.save never writes. */
  readonly method: number;
  /** Where the entry's data starts in the file, after its local header. */
  readonly dataOffset: number;
  readonly size: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** Reads exactly `n` bytes at `position`, or returns fewer when the file ends first. */
function readAt(fd: number, position: number, n: number): Buffer {
  const buf = Buffer.alloc(n);
  let done = 0;
  while (done < n) {
    const got = readSync(fd, buf, done, n - done, position + done);
    if (got === 0) break;
    done += got;
  }
  return done === n ? buf : buf.subarray(0, done);
}

function u64(buf: Buffer, at: number, what: string, fail: (what: string) => never): number {
  const v = buf.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is ${v}, beyond any real file`);
  return Number(v);
}

/**
 * Every entry of the zip in `fd` (a file of `fileSize` bytes), with its data range checked to lie inside
 * the file. `fail` turns a problem into the caller's error (it names the file and what to do).
 */
export function readZipDirectory(fd: number, fileSize: number, fail: (what: string) => never): Map<string, ZipEntry> {
  // The end-of-central-directory record sits in the last 22 bytes, or before a comment of up to 64 KiB.
  const tailStart = Math.max(0, fileSize - EOCD_SIZE - MAX_COMMENT);
  const tail = readAt(fd, tailStart, fileSize - tailStart);
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + EOCD_SIZE + tail.readUInt16LE(i + 20) <= tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('it has no zip end-of-directory record (the file is truncated, or not a zip archive)');
  const eocdPos = tailStart + eocd;
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) fail('it is a multi-part zip archive');
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let cdEnd = eocdPos;
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    // ZIP64 (torch writes it for large files): a locator just before the record points at the real one.
    const loc = eocdPos >= 20 ? readAt(fd, eocdPos - 20, 20) : Buffer.alloc(0);
    if (loc.length < 20 || loc.readUInt32LE(0) !== ZIP64_LOCATOR) fail('its zip64 end-of-directory locator is missing');
    const at = u64(loc, 8, 'the zip64 directory offset', fail);
    const rec = at + 56 <= eocdPos - 20 ? readAt(fd, at, 56) : Buffer.alloc(0);
    if (rec.length < 56 || rec.readUInt32LE(0) !== ZIP64_EOCD) fail('its zip64 end-of-directory record is missing or misplaced');
    count = u64(rec, 32, 'the entry count', fail);
    cdSize = u64(rec, 40, 'the directory size', fail);
    cdOffset = u64(rec, 48, 'the directory offset', fail);
    cdEnd = at;
  }
  if (cdOffset + cdSize > cdEnd) fail(`its zip directory (${cdSize} bytes at ${cdOffset}) runs past where it should end (${cdEnd}); the file is truncated or corrupt`);
  if (count * 46 > cdSize) fail(`its zip directory claims ${count} entries in ${cdSize} bytes`);

  const cd = readAt(fd, cdOffset, cdSize);
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) fail(`zip directory entry ${i} is malformed`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    let compressed = cd.readUInt32LE(p + 20);
    let size = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let local = cd.readUInt32LE(p + 42);
    const next = p + 46 + nameLen + extraLen + commentLen;
    if (next > cd.length) fail(`zip directory entry ${i} runs past the directory`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extra field: the 64-bit values, in this order, of exactly the fields saturated above.
    for (let x = p + 46 + nameLen; x + 4 <= p + 46 + nameLen + extraLen;) {
      const id = cd.readUInt16LE(x);
      const len = cd.readUInt16LE(x + 2);
      if (id === 0x0001) {
        let q = x + 4;
        const take = (what: string): number => {
          if (q + 8 > x + 4 + len) fail(`the zip64 sizes of entry '${name}' are incomplete`);
          const v = u64(cd, q, what, fail);
          q += 8;
          return v;
        };
        if (size === 0xffffffff) size = take(`the size of '${name}'`);
        if (compressed === 0xffffffff) compressed = take(`the compressed size of '${name}'`);
        if (local === 0xffffffff) local = take(`the offset of '${name}'`);
      }
      x += 4 + len;
    }
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    if (entries.has(name)) fail(`it has two entries named '${name}'`);
    if (method === 0 && compressed !== size) fail(`stored entry '${name}' has a compressed size ${compressed} different from its size ${size}`);
    // The local header repeats the name but may carry its own extra field (torch pads data to 64 bytes there).
    const lh = local + 30 <= cdOffset ? readAt(fd, local, 30) : Buffer.alloc(0);
    if (lh.length < 30 || lh.readUInt32LE(0) !== LOCAL) fail(`the local header of entry '${name}' (at byte ${local}) is missing`);
    const dataOffset = local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (dataOffset + compressed > cdOffset) {
      fail(`entry '${name}' claims ${compressed} bytes at byte ${dataOffset}, past the end of the data (byte ${cdOffset}); the file is truncated or corrupt`);
    }
    entries.set(name, { name, method, dataOffset, size: compressed });
    p = next;
  }
  return entries;
}
