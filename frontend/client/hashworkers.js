/**
 * A pool of Web Workers that hash Blob slices: each worker reads its slice and computes the
 * SHA-256 off the page's thread, and only the 44-character checksum comes back (a Blob is
 * posted by reference, so no part's bytes cross threads). Used by the hasher when the option
 * `hashWorkers` asks for it and the environment has Workers; otherwise the page hashes.
 */

// The worker's whole program, started from a blob: URL so that the client stays files the
// page serves as they are (no bundler, no separate worker file to host on the same origin).
const WORKER_SOURCE = `
self.onmessage = async ({ data: { id, blob } }) => {
  try {
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
    let text = "";
    for (const byte of digest) text += String.fromCharCode(byte);
    self.postMessage({ id, checksum: btoa(text) });
  } catch (error) {
    self.postMessage({ id, error: String(error?.message ?? error) });
  }
};
`;

/** Whether Workers can be started here (a browser; not Node's test runner). */
export function workersAvailable() {
  return typeof Worker === "function" && typeof URL?.createObjectURL === "function";
}

export class HashWorkers {
  constructor(count) {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    this._workers = Array.from({ length: count }, () => new Worker(url));
    URL.revokeObjectURL(url);
    this._idle = [...this._workers];
    this._queue = []; // [blob, resolve, reject] waiting for an idle worker
    this._calls = new Map(); // id -> [resolve, reject, worker]
    this._next = 0;
    for (const worker of this._workers) {
      worker.onmessage = ({ data: { id, checksum, error } }) => {
        const [resolve, reject] = this._calls.get(id);
        this._calls.delete(id);
        this._idle.push(worker);
        this._pump();
        if (error) reject(new Error(error));
        else resolve(checksum);
      };
    }
  }

  /** The base64 SHA-256 of `blob`, computed by the next idle worker. */
  hash(blob) {
    return new Promise((resolve, reject) => {
      this._queue.push([blob, resolve, reject]);
      this._pump();
    });
  }

  _pump() {
    while (this._idle.length && this._queue.length) {
      const worker = this._idle.shift();
      const [blob, resolve, reject] = this._queue.shift();
      const id = ++this._next;
      this._calls.set(id, [resolve, reject]);
      worker.postMessage({ id, blob });
    }
  }

  close() {
    for (const worker of this._workers) worker.terminate();
    for (const [, reject] of this._calls.values()) reject(new Error("closed"));
    this._calls.clear();
  }
}
