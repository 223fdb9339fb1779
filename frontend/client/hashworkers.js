/**
 * A pool of Web Workers that hash Blob slices: each worker reads its slice and computes its
 * digest (SHA-256, CRC32C or MD5, digests.js) off the page's thread, and only the base64
 * checksum comes back (a Blob is posted by reference, so no part's bytes cross threads).
 * Used by the hasher when the option `hashWorkers` asks for it and the environment has
 * Workers; otherwise the page hashes.
 */

import { DIGEST_SOURCE } from "./digests.js";

// The worker's whole program, started from a blob: URL so that the client stays files the
// page serves as they are (no bundler, no separate worker file to host on the same origin).
// The digests are digests.js's own functions, as their source text: one implementation.
export const WORKER_SOURCE = `
${DIGEST_SOURCE}

self.onmessage = async ({ data: { id, blob, algorithm } }) => {
  try {
    self.postMessage({ id, checksum: await digestBase64(algorithm, await blob.arrayBuffer()) });
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
    this._queue = []; // [blob, algorithm, resolve, reject] waiting for an idle worker
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

  /**
   * The base64 digest `algorithm` ("SHA256", "CRC32C" or "MD5"; digests.js's digestBase64) of
   * `blob`, computed by the next idle worker.
   */
  hash(blob, algorithm = "SHA256") {
    return new Promise((resolve, reject) => {
      this._queue.push([blob, algorithm, resolve, reject]);
      this._pump();
    });
  }

  _pump() {
    while (this._idle.length && this._queue.length) {
      const worker = this._idle.shift();
      const [blob, algorithm, resolve, reject] = this._queue.shift();
      const id = ++this._next;
      this._calls.set(id, [resolve, reject]);
      worker.postMessage({ id, blob, algorithm });
    }
  }

  close() {
    for (const worker of this._workers) worker.terminate();
    for (const [, reject] of this._calls.values()) reject(new Error("closed"));
    this._calls.clear();
  }
}
