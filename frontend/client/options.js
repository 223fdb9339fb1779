/**
 * The options of the client and their defaults. `upload(file, options)` and the API helpers
 * merge what they are given over DEFAULT_OPTIONS exactly once, here.
 */
import { RETRY_DELAYS, sleep } from "./retry.js";
import { xhrPutPart } from "./transport.js";

export const DEFAULT_OPTIONS = Object.freeze({
  /** The uploads collection of the Partwise API. */
  endpoint: "/api/uploads/",
  /** Parts sent at the same time. */
  concurrency: 4,
  /**
   * SHA-256 every part and have S3 verify it (signed x-amz-checksum-sha256). false sends the
   * parts unhashed: faster on a slow CPU, but S3 then checks only sizes, and an unfinished
   * upload cannot be proven to hold this file's bytes, so it is never resumed.
   */
  checksums: true,
  /**
   * Parts read and hashed ahead of those being sent. Their bytes are kept and sent as they were
   * hashed (one read per part), so memory stays at most (concurrency + lookahead) × part size.
   */
  lookahead: 4,
  /**
   * How far the hasher may run past the buffered parts to give sign calls checksums:
   * "batch" (default): up to a whole sign batch, so a GiB costs a few sign calls (parts hashed
   * beyond the buffer are read again when sent, as Blob slices the browser streams);
   * "buffer": never past the buffer, so every part is read exactly once, at the cost of a sign
   * call per `lookahead` parts.
   */
  hashAhead: "batch",
  /**
   * PUT the bytes already read for hashing (true) or a Blob slice of the file (false). Measured
   * (docs/performance.md, bench_throughput.py in Chromium): an ArrayBuffer body is copied to
   * the network process and ran at a third of a Blob slice's speed, which Chromium streams from
   * the file; reading twice costs far less.
   */
  sendHashedBytes: false,
  /**
   * Web Workers that hash parts off the page's thread, each reading its Blob slice itself, so
   * no part's bytes ever reach the page. Measured (docs/performance.md): the page's peak JS
   * heap for a GiB fell from ~420 MiB (hashed buffers waiting for the garbage collector) to
   * 6 MiB, at the same or better speed. 0 hashes on the page. Used only with Blob slices
   * (sendHashedBytes false) and where Workers exist (not in Node).
   */
  hashWorkers: 2,
  /**
   * Most parts presigned per sign call; the server's limits.sign_batch_max caps it. Each call
   * takes every part hashed so far, never more than can be sent in half a URL's lifetime at
   * the measured speed, so a slow link never sees its URLs expire.
   */
  signBatchSize: 100,
  /**
   * ETags are reported in batches: when this many are waiting (capped by 64 and by
   * limits.report_batch_max), so a GiB of 8 MiB parts costs two reports...
   */
  reportBatchSize: 64,
  /**
   * ...or this many ms after the oldest waiting one finished (at most half the server's
   * limits.session_idle, so the session stays live), and always before completing. Others see
   * progress later in between, but the server reconciles with S3 whenever it is asked.
   */
  reportInterval: 15_000,
  /** Preferred part size in bytes; undefined lets the server choose (UPLOADS_PART_SIZE). */
  partSize: undefined,
  /**
   * Base delays (ms) before each retry of a network error, a 5xx, a 408/429 or an expired URL.
   * The length is the number of retries; each delay is jittered to between half and all of it.
   */
  retryDelays: RETRY_DELAYS,
  /** A part PUT that reports no progress for this long is dropped and retried. */
  stallTimeout: 60_000,
  /** Look for an unfinished upload of the same file (by fingerprint) and continue it. */
  resume: true,
  /** Continue this upload (an id from listUnfinishedUploads) instead of looking one up. */
  uploadId: undefined,
  /** Already-uploaded parts to hash and compare before resuming (Infinity: all of them). */
  verifyParts: 1,
  /** This upload attempt's session id (^[A-Za-z0-9_-]{8,64}$); undefined: a random one. */
  session: undefined,
  /** While only parts held by another live session remain, ask the server this often (ms). */
  leasePollInterval: 2000,
  /** Extra headers for API calls, e.g. { Authorization: "Token …" } outside the web page. */
  headers: {},
  /** CSRF token for session auth: a string, a function, or undefined for the csrftoken cookie. */
  csrfToken: undefined,
  /** fetch(url, init) used for the JSON API. */
  fetch: (...args) => globalThis.fetch(...args),
  /** putPart({ url, method, headers, body, signal, onProgress }) -> { status, etag, body }. */
  putPart: (request) => xhrPutPart(request),
  /** Wait `ms` milliseconds, rejecting with signal.reason when the signal aborts. */
  sleep: (ms, signal) => sleep(ms, signal),
  /** Random numbers in [0, 1) for jitter and for choosing which part proves a resume. */
  random: () => Math.random(),
  /** The clock (ms), for speed, ETA and URL expiry. */
  now: () => Date.now(),
  /** Window (ms) over which speed is averaged. */
  speedWindow: 5000,
  /** The object whose `online` event cuts a retry wait short; undefined: `window` if any. */
  onlineTarget: undefined,
  onStateChange: undefined,
  onProgress: undefined,
  onPartComplete: undefined,
  onRetry: undefined,
  onResume: undefined,
  onMismatch: undefined,
  onError: undefined,
  onSuccess: undefined,
  onConnection: undefined,
  onSessions: undefined,
});

export function resolveOptions(options) {
  const merged = { ...DEFAULT_OPTIONS, ...options };
  merged.endpoint = merged.endpoint.endsWith("/") ? merged.endpoint : `${merged.endpoint}/`;
  merged.concurrency = Math.max(1, Math.floor(merged.concurrency));
  merged.lookahead = Math.max(0, Math.floor(merged.lookahead));
  merged.hashWorkers = Math.max(0, Math.floor(merged.hashWorkers));
  merged.signBatchSize = Math.max(1, Math.floor(merged.signBatchSize));
  merged.reportBatchSize = Math.max(1, Math.floor(merged.reportBatchSize));
  return merged;
}
