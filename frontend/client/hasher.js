/**
 * The part hasher: each part's digest in the upload's algorithm ("SHA256", "CRC32C" or "MD5",
 * the one the server chose: digests.js), computed once, and the bytes read for it kept (in a
 * bounded number of buffers) so that the PUT sends them without reading the file again.
 * No network here; the handle decides which algorithm, and which parts to hash, keep, send and drop.
 */
import { digestBase64 } from "./digests.js";
import { partRange } from "./fingerprint.js";
import { HashWorkers, workersAvailable } from "./hashworkers.js";
import { Slots } from "./queues.js";
import { traced } from "./trace.js";

export class PartHasher {
  /**
   * `buffers`: most parts whose bytes are kept at once, when `keeps` (the PUT sends them);
   * otherwise no bytes outlive their hashing. A part hashed without keeping its bytes takes a
   * slot of its own while it is read (`readers` of them); the handle counts those slots in
   * its memory bound.
   */
  constructor(file, { buffers, keeps = true, readers = 1, workers = 0 }) {
    this.file = file;
    // Workers hash parts whose bytes are not kept (they never reach this thread).
    this._pool = !keeps && workers > 0 && workersAvailable() ? new HashWorkers(workers) : null;
    this.partSize = null; // the part size the checksums are for
    this.algorithm = null; // the digest the checksums are ("SHA256", "CRC32C", "MD5")
    this.keeps = keeps;
    this.slots = new Slots(buffers);
    this._transient = new Slots(readers);
    this._checksums = new Map(); // part number -> base64 digest (the file does not change)
    this._buffers = new Map(); // part number -> the bytes read for hashing, kept to be sent
    this._hashing = new Map(); // part number -> promise of its checksum, while being hashed
    this._waiters = new Set(); // callers of whenChanged()
  }

  /**
   * Start over (no checksums, no kept bytes) when the plan or the digest is not the one the
   * checksums were made for: `partSize`, and `algorithm` ("SHA256", "CRC32C" or "MD5"; "" for
   * an upload whose parts carry none, which the handle then never hashes).
   */
  use(partSize, algorithm = "SHA256") {
    if (this.partSize === partSize && this.algorithm === algorithm) return;
    this.partSize = partSize;
    this.algorithm = algorithm;
    this._checksums.clear();
    this._hashing.clear(); // a hashing under way ends unrecorded (it checks the plan)
    this.dropAll();
  }

  /** Whether a buffer is free now. */
  get room() {
    return this.slots.used < this.slots.limit;
  }

  has(number) {
    return this._checksums.has(number);
  }

  /** Whether part `number` is hashed or being hashed. */
  started(number) {
    return this._checksums.has(number) || this._hashing.has(number);
  }

  checksum(number) {
    return this._checksums.get(number);
  }

  /** The bytes kept for part `number`, if any. */
  bytes(number) {
    return this._buffers.get(number);
  }

  /**
   * The part's digest in `this.algorithm` (base64), computed once (concurrent callers share
   * the same hashing). The bytes read are kept for the PUT when `keep` (they hold a buffer
   * until sent or dropped).
   */
  hash(number, signal, keep = true) {
    if (this._checksums.has(number)) return Promise.resolve(this._checksums.get(number));
    keep &&= this.keeps;
    let hashing = this._hashing.get(number);
    if (!hashing) {
      const { partSize, algorithm } = this;
      const [start, end] = partRange(number, partSize, this.file.size);
      const slots = keep ? this.slots : this._transient;
      hashing = (async () => {
        await slots.acquire(signal);
        let kept = false;
        try {
          let bytes;
          let checksum;
          if (this._pool && !keep) {
            checksum = await traced("hash", () => this._pool.hash(this.file.slice(start, end), algorithm));
          } else {
            bytes = await traced("read", () => this.file.slice(start, end).arrayBuffer());
            checksum = await traced("hash", () => digestBase64(algorithm, bytes));
          }
          // The plan or the digest changed meanwhile: this checksum is not one of theirs.
          if (this.partSize !== partSize || this.algorithm !== algorithm) return checksum;
          this._checksums.set(number, checksum);
          if (keep && !signal?.aborted) {
            this._buffers.set(number, bytes);
            kept = true;
          }
          return checksum;
        } finally {
          if (!kept) slots.release();
        }
      })().finally(() => {
        if (this._hashing.get(number) === hashing) this._hashing.delete(number);
      });
      this._hashing.set(number, hashing);
    }
    return hashing;
  }

  /** Drop the bytes kept for part `number` (sent, or not ours to send). */
  drop(number) {
    if (!this._buffers.delete(number)) return;
    this.slots.release();
    this.changed();
  }

  dropAll() {
    for (const number of [...this._buffers.keys()]) this.drop(number);
  }

  /** Stop the hash workers, if any (the upload ended). */
  close() {
    this._pool?.close();
    this._pool = null;
  }

  /** Wake whoever waits in whenChanged(): a part was sent, a buffer freed, a sign call made. */
  changed() {
    for (const wake of [...this._waiters]) wake();
    this._waiters.clear();
  }

  whenChanged(signal) {
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this._waiters.delete(wake);
        reject(signal.reason);
      };
      const wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      this._waiters.add(wake);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}
