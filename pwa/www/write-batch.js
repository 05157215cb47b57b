// Write batching for SQLite on OPFS, loaded by the worker before the wasm module. Every call into a
// FileSystemSyncAccessHandle costs tens of microseconds whatever its size, and SQLite writes a WAL frame as two
// calls (a 24-byte frame header, then the page), one page at a time. This wraps the handles' methods so that
// contiguous writes collect in a per-handle buffer (up to 2 MiB) and reach the file as one call:
//   - a write that does not continue the buffered run, or would overflow it, first writes the run out;
//   - read() of a range that overlaps the run, truncate(), flush() and close() write the run out first;
//   - getSize() reports the size including the run (it only ever extends the file).
// A transaction must not look committed to SQLite before its bytes are in the file, or a later failure (quota
// exhausted, I/O error) would leave SQLite's in-memory WAL index pointing at frames that were never written.
// So the run is written out inside the writes that complete a commit: a WAL frame header whose "database size
// after commit" field (bytes 4..8) is non-zero, and the page write that follows it. A failure there fails that
// write, and SQLite rolls the transaction back as it would for an unbuffered write. Checkpoints sync (flush) before
// they finish, which writes their runs out the same way. `drainAll()` (called by the worker after every
// request and sync) writes out anything else left.
const LIMIT = 2 << 20;
const FIRST = 64 << 10;
/** SQLite's WAL frame header: page number, database size after commit (0 unless a commit), salts, checksums. */
const WAL_FRAME_HEADER = 24;

/** Counters for benchmarks: calls made by SQLite vs calls that reached the file. */
export const stats = { writes: 0, fileWrites: 0, bytes: 0 };

const pending = new Set();
let drainAllImpl = () => {};

/** Writes out every handle's buffered run; throws the first failure. */
export function drainAll() { drainAllImpl(); }

const Handle = globalThis.FileSystemSyncAccessHandle;
if (Handle && !Handle.prototype.hephBatched) {
  const P = Handle.prototype;
  const orig = { write: P.write, read: P.read, flush: P.flush, truncate: P.truncate, getSize: P.getSize, close: P.close };
  const runs = new WeakMap(); // handle -> { buf, at, len }

  const drain = (h) => {
    const r = runs.get(h);
    if (!r || r.len === 0) return;
    const { at, len } = r;
    r.len = 0;
    pending.delete(h);
    stats.fileWrites += 1;
    const n = orig.write.call(h, r.buf.subarray(0, len), { at });
    if (n !== len) throw new DOMException(`short write: ${n} of ${len} bytes at ${at}`, 'InvalidStateError');
  };
  drainAllImpl = () => {
    let first = null;
    for (const h of [...pending]) {
      try { drain(h); } catch (e) { first = first || e; }
    }
    if (first) throw first;
  };

  const bytesOf = (b) => (ArrayBuffer.isView(b) ? new Uint8Array(b.buffer, b.byteOffset, b.byteLength) : new Uint8Array(b));

  P.write = function write(buffer, options) {
    const at = options && typeof options.at === 'number' ? options.at : null;
    const src = bytesOf(buffer);
    stats.writes += 1;
    stats.bytes += src.byteLength;
    if (at === null || src.byteLength >= LIMIT) {
      // Cursor-relative or large: no batching.
      const r = runs.get(this);
      if (r) r.commit = false;
      drain(this);
      stats.fileWrites += 1;
      return orig.write.call(this, buffer, options);
    }
    let r = runs.get(this);
    if (r && r.len > 0 && (r.at + r.len !== at || r.len + src.byteLength > LIMIT)) drain(this);
    if (!r) { r = { buf: new Uint8Array(FIRST), at: 0, len: 0, commit: false }; runs.set(this, r); }
    const completesCommit = r.commit;
    r.commit = src.byteLength === WAL_FRAME_HEADER && (src[4] | src[5] | src[6] | src[7]) !== 0;
    if (r.len === 0) r.at = at;
    if (r.len + src.byteLength > r.buf.byteLength) {
      let size = r.buf.byteLength;
      while (size < r.len + src.byteLength) size *= 2;
      const grown = new Uint8Array(Math.min(size, LIMIT));
      grown.set(r.buf.subarray(0, r.len));
      r.buf = grown;
    }
    r.buf.set(src, r.len);
    r.len += src.byteLength;
    pending.add(this);
    // A commit frame's header, and the page after it (the last write of the transaction), reach the file now
    // (the header on its own too, because SQLite also rewrites the headers of a transaction's frames in place).
    if (completesCommit || r.commit) drain(this);
    return src.byteLength;
  };

  P.read = function read(buffer, options) {
    const r = runs.get(this);
    if (r && r.len > 0) {
      const at = options && typeof options.at === 'number' ? options.at : null;
      if (at === null || (at < r.at + r.len && at + buffer.byteLength > r.at)) drain(this);
    }
    return orig.read.call(this, buffer, options);
  };

  P.getSize = function getSize() {
    const size = orig.getSize.call(this);
    const r = runs.get(this);
    return r && r.len > 0 ? Math.max(size, r.at + r.len) : size;
  };

  P.truncate = function truncate(size) { drain(this); return orig.truncate.call(this, size); };
  P.flush = function flush() { drain(this); return orig.flush.call(this); };
  P.close = function close() {
    try { drain(this); } finally { orig.close.call(this); }
  };
  Object.defineProperty(P, 'hephBatched', { value: true });
}
