/**
 * Partwise browser client: resumable, parallel, checksummed multipart uploads straight to S3.
 *
 * One dependency-free ES module. `upload(file, options)` returns a handle with progress events,
 * pause(), resume(), cancel() and a promise of the completed upload; `listUnfinishedUploads()`
 * and `upload(file, { uploadId })` resume uploads started in any other browser session.
 *
 * The server (Partwise's REST API) decides, signs, checks and records; the bytes go straight
 * from the browser to S3. This module never holds more than `concurrency` parts in memory:
 * parts are read with Blob.slice only to hash them, and sent as Blob slices that the browser
 * streams from disk. JSON calls go through `fetch`, part PUTs through XHR (fetch reports no
 * upload progress); both are injectable (`options.fetch`, `options.putPart`) so tests can drive
 * a fake server request by request.
 *
 * Wire names are snake_case (the API's); everything this module hands out is camelCase.
 */

export const MiB = 1024 * 1024;

/** Bytes hashed at each end of the file for its fingerprint. */
export const FINGERPRINT_SAMPLE = MiB;

/** A presigned URL this close to its expiry is signed again before use. */
export const EXPIRY_MARGIN_MS = 60_000;

/** How many times the part loop asks again after the server says a part is missing. */
const MAX_COMPLETE_ROUNDS = 3;

export const DEFAULT_OPTIONS = Object.freeze({
  /** The uploads collection of the Partwise API. */
  endpoint: "/api/uploads/",
  /** Parts sent at the same time; also the most parts held in memory while hashing. */
  concurrency: 4,
  /**
   * Most parts presigned per sign call: at most the server's UPLOADS_SIGN_BATCH_MAX (1,000 by
   * default; its system check warns below 100). Parts are hashed ahead of sending and each
   * sign call takes every part hashed so far (at least `concurrency`), never more than can be
   * sent in half a URL's lifetime at the measured speed, so a GiB costs a few sign calls and a
   * slow link never sees its URLs expire.
   */
  signBatchSize: 100,
  /** ETags are reported to the server in batches: when this many are waiting... */
  reportBatchSize: 64,
  /** ...or this many ms after the oldest waiting one finished (and always before completing). */
  reportInterval: 2000,
  /** Preferred part size in bytes; undefined lets the server choose (UPLOADS_PART_SIZE). */
  partSize: undefined,
  /**
   * Base delays (ms) before each retry of a network error, a 5xx, a 408/429 or an expired URL.
   * The length is the number of retries; each delay is jittered to between half and all of it.
   */
  retryDelays: [500, 1000, 2000, 4000, 8000, 16000, 30000],
  /** A part PUT that reports no progress for this long is dropped and retried. */
  stallTimeout: 60_000,
  /** Look for an unfinished upload of the same file (by fingerprint) and continue it. */
  resume: true,
  /** Continue this upload (an id from listUnfinishedUploads) instead of looking one up. */
  uploadId: undefined,
  /** Already-uploaded parts to hash and compare before resuming (Infinity: all of them). */
  verifyParts: 1,
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
  onStateChange: undefined,
  onProgress: undefined,
  onPartComplete: undefined,
  onRetry: undefined,
  onResume: undefined,
  onMismatch: undefined,
  onError: undefined,
  onSuccess: undefined,
});

const CALLBACKS = {
  state: "onStateChange",
  progress: "onProgress",
  part: "onPartComplete",
  retry: "onRetry",
  resume: "onResume",
  mismatch: "onMismatch",
  error: "onError",
  success: "onSuccess",
};

/** The one error type. `code` is stable (the API's own codes, or the ones below). */
export class UploadError extends Error {
  constructor(message, { code = "error", status = 0, response = null, retryable = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "UploadError";
    this.code = code;
    this.status = status;
    this.response = response;
    this.retryable = retryable;
  }
}

const PAUSED = () => new UploadError("The upload is paused.", { code: "paused" });
const CANCELLED = () => new UploadError("The upload was cancelled.", { code: "cancelled" });

// --- small helpers ---------------------------------------------------------------------------
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Exponential backoff with "equal jitter": between half and all of retryDelays[attempt]. */
export function backoffDelay(retryDelays, attempt, random = Math.random) {
  const base = retryDelays[Math.min(attempt, retryDelays.length - 1)] ?? 0;
  return Math.round(base / 2 + (random() * base) / 2);
}

/** snake_case keys to camelCase, recursively: the one translation of the wire format. */
export function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/_([a-z0-9])/g, (_, char) => char.toUpperCase()),
      camelize(item),
    ]),
  );
}

function toBase64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

function toHex(bytes) {
  return [...new Uint8Array(bytes)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Base64 SHA-256 of a Blob, as S3's x-amz-checksum-sha256. Reads the whole blob. */
export async function sha256Base64(blob) {
  return toBase64(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer()));
}

/**
 * A fingerprint that names the file across sessions and machines: its size, name,
 * lastModified and the SHA-256 of its first and last MiB, hashed into 67 ASCII characters.
 * Equal fingerprints are only a hint; resuming also hashes an uploaded part (see verifyParts).
 */
export async function fileFingerprint(file) {
  const head = await sha256Base64(file.slice(0, Math.min(FINGERPRINT_SAMPLE, file.size)));
  const tail = await sha256Base64(file.slice(Math.max(0, file.size - FINGERPRINT_SAMPLE)));
  const text = JSON.stringify(["partwise-v1", file.size, file.name, file.lastModified ?? 0, head, tail]);
  return `v1:${toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))}`;
}

/** A function that runs tasks with at most `limit` of them running at once. */
function limiter(limit) {
  let running = 0;
  const waiting = [];
  const release = () => {
    running--;
    waiting.shift()?.();
  };
  return async (task) => {
    if (running >= limit) await new Promise((resolve) => waiting.push(resolve));
    running++;
    try {
      return await task();
    } finally {
      release();
    }
  };
}

/** Run `task` on each item with at most `limit` running at once. */
async function mapLimit(items, limit, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function resolveOptions(options) {
  const merged = { ...DEFAULT_OPTIONS, ...options };
  merged.endpoint = merged.endpoint.endsWith("/") ? merged.endpoint : `${merged.endpoint}/`;
  merged.concurrency = Math.max(1, Math.floor(merged.concurrency));
  merged.signBatchSize = Math.max(1, Math.floor(merged.signBatchSize));
  merged.reportBatchSize = Math.max(1, Math.floor(merged.reportBatchSize));
  return merged;
}

function csrfToken(options) {
  if (typeof options.csrfToken === "function") return options.csrfToken();
  if (typeof options.csrfToken === "string") return options.csrfToken;
  if (typeof document === "undefined") return "";
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

// Statuses worth asking again: the server or the network failed, or asked us to slow down.
// 408 and 429 are "try later" by definition; every other 4xx is a final answer.
function isRetryableStatus(status) {
  return status >= 500 || status === 408 || status === 429;
}

function isAbortError(error, signal) {
  return Boolean(signal?.aborted) || error?.name === "AbortError";
}

/** Call `task(attempt)` again after backoff while it fails with a retryable UploadError. */
async function withRetries(options, signal, task, onRetry) {
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    try {
      return await task(attempt);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!error?.retryable || attempt >= options.retryDelays.length) throw error;
      const delay = backoffDelay(options.retryDelays, attempt, options.random);
      onRetry?.({ attempt: attempt + 1, delay, error });
      await options.sleep(delay, signal);
    }
  }
}

/** One JSON call to the API. Throws UploadError (retryable for network errors, 5xx, 408, 429). */
async function apiCall(options, method, url, body, signal) {
  const headers = { Accept: "application/json", ...options.headers };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken(options);
    if (token) headers["X-CSRFToken"] = token;
  }
  let response;
  let text;
  try {
    response = await options.fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
    text = await response.text();
  } catch (error) {
    if (isAbortError(error, signal)) throw signal?.reason ?? error;
    throw new UploadError("The Partwise server could not be reached.", {
      code: "network_error",
      retryable: true,
      cause: error,
    });
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  throw new UploadError(data?.detail || `The Partwise server answered ${response.status}.`, {
    code: data?.code || `http_${response.status}`,
    status: response.status,
    response: camelize(data),
    retryable: isRetryableStatus(response.status),
  });
}

function api(options, signal, method, path, body, onRetry) {
  const url = /^https?:/.test(path) ? path : `${options.endpoint}${path}`;
  return withRetries(options, signal, () => apiCall(options, method, url, body, signal), onRetry);
}

/** POST …/complete/, asking again while another call is completing the upload. */
function completeUpload(options, signal, id, onRetry) {
  const url = `${options.endpoint}${id}/complete/`;
  const attempt = async () => {
    try {
      return await apiCall(options, "POST", url, undefined, signal);
    } catch (error) {
      // 409 "completing": another call is completing it, often our own whose answer was lost;
      // the server asks to try again shortly, and then answers the completed upload.
      if (error?.status === 409 && error.response?.status === "completing") error.retryable = true;
      throw error;
    }
  };
  return withRetries(options, signal, attempt, onRetry);
}

// --- the API outside an upload ---------------------------------------------------------------
/** One page of the caller's uploads: { uploads, next } (next: the cursor URL or null). */
export async function listUploads(query = {}, options = {}) {
  const resolved = resolveOptions(options);
  const params = new URLSearchParams(Object.entries(query).filter(([, value]) => value != null));
  const path = query.next || (params.size || [...params].length ? `?${params}` : "");
  const data = await api(resolved, options.signal, "GET", path);
  return { uploads: camelize(data.results), next: data.next };
}

/** Every unfinished upload of the caller, newest first (all pages). */
export async function listUnfinishedUploads(options = {}) {
  const uploads = [];
  let page = await listUploads({ status: "uploading" }, options);
  uploads.push(...page.uploads);
  while (page.next) {
    page = await listUploads({ next: page.next }, options);
    uploads.push(...page.uploads);
  }
  return uploads;
}

/** One upload with its parts, reconciled with S3 by the server. */
export async function getUpload(id, options = {}) {
  return camelize(await api(resolveOptions(options), options.signal, "GET", `${id}/`));
}

/** Abort an upload (and its S3 multipart upload). Repeating it is harmless. */
export async function abortUpload(id, options = {}) {
  return camelize(await api(resolveOptions(options), options.signal, "DELETE", `${id}/`));
}

// --- the part transport ----------------------------------------------------------------------
// Headers a script may not set: the browser sets Content-Length from the Blob itself.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection"]);

/**
 * PUT one part with XMLHttpRequest, for byte-level upload progress. Resolves with the response
 * whatever its status ({ status, etag, body }); rejects on network failure and abort.
 */
export function xhrPutPart({ url, method = "PUT", headers = {}, body, signal, onProgress }) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const xhr = new XMLHttpRequest();
    const onAbort = () => xhr.abort();
    xhr.open(method, url, true);
    for (const [name, value] of Object.entries(headers)) {
      if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress?.(event.loaded);
    xhr.onload = () =>
      resolve({ status: xhr.status, etag: xhr.getResponseHeader("ETag"), body: xhr.responseText });
    xhr.onerror = () => reject(new TypeError(`The connection failed while sending to ${new URL(url).host}.`));
    xhr.onabort = () => reject(signal?.reason ?? new DOMException("Aborted", "AbortError"));
    xhr.onloadend = () => signal?.removeEventListener("abort", onAbort);
    signal?.addEventListener("abort", onAbort, { once: true });
    xhr.send(body);
  });
}

function s3ErrorField(body, field) {
  const match = typeof body === "string" && body.match(new RegExp(`<${field}>([^<]*)</${field}>`));
  return match ? match[1] : "";
}

/** Classify a non-2xx answer of S3 to a part PUT. */
function partError(number, result) {
  const s3Code = s3ErrorField(result.body, "Code");
  const s3Message = s3ErrorField(result.body, "Message");
  const options = { status: result.status, response: { s3Code, s3Message, body: result.body } };
  if (result.status === 403 && /expired/i.test(`${s3Message} ${s3Code}`)) {
    return new UploadError(`The link for part ${number} expired; signing it again.`, {
      ...options,
      code: "url_expired",
      retryable: true,
    });
  }
  if (isRetryableStatus(result.status)) {
    return new UploadError(`The storage server failed on part ${number} (${result.status}).`, {
      ...options,
      code: "storage_unavailable",
      retryable: true,
    });
  }
  if (s3Code === "BadDigest" || s3Code === "InvalidDigest" || s3Code === "XAmzContentChecksumMismatch") {
    return new UploadError(
      `The storage server found that part ${number} does not match its checksum: the file changed while it was being sent.`,
      { ...options, code: "checksum_mismatch" },
    );
  }
  if (s3Code === "SignatureDoesNotMatch") {
    return new UploadError(
      `The storage server refused part ${number}: its size or checksum differs from what was signed (did the file change?).`,
      { ...options, code: "part_refused" },
    );
  }
  if (s3Code === "NoSuchUpload" || result.status === 404) {
    return new UploadError("The upload no longer exists in storage (it was cancelled or expired).", {
      ...options,
      code: "upload_gone",
    });
  }
  return new UploadError(
    `The storage server refused part ${number} (${result.status}${s3Code ? ` ${s3Code}` : ""}).`,
    { ...options, code: "part_refused" },
  );
}

export const ETAG_HELP =
  "The storage server accepted the part but the browser could not read its ETag. " +
  "Fix the bucket's CORS rule: it must expose the ETag header (ExposeHeaders: [\"ETag\"]), " +
  "e.g. with `python manage.py setup_storage`.";

// --- the upload ------------------------------------------------------------------------------
/** Start uploading `file` (a File or Blob with a name); see DEFAULT_OPTIONS for the options. */
export function upload(file, options = {}) {
  return new UploadHandle(file, options);
}

export class UploadHandle {
  constructor(file, options = {}) {
    this.file = file;
    this.options = resolveOptions(options);
    /** idle | preparing | uploading | paused | completing | completed | failed | cancelled */
    this.state = "idle";
    /** The server's upload (camelCase) once it is known. */
    this.upload = null;
    this.error = null;
    this.fingerprint = null;
    this._listeners = new Map();
    for (const [type, name] of Object.entries(CALLBACKS)) {
      if (typeof this.options[name] === "function") this.on(type, this.options[name]);
    }
    this._checksums = new Map(); // part number -> base64 SHA-256 (the file does not change)
    this._hashing = new Map(); // part number -> promise of its checksum, while being hashed
    // Every part read for hashing goes through this, so at most `concurrency` parts are in
    // memory whoever asks (the hash-ahead pipeline or a sign call).
    this._readSlots = limiter(this.options.concurrency);
    this._urlLifetime = null; // ms a presigned URL lives, learnt from the first sign call
    this._done = new Map(); // part number -> size, for parts S3 holds
    this._doneBytes = 0;
    this._inflight = new Map(); // part number -> bytes sent so far in the current attempt
    this._bytesSent = 0; // bytes of parts this handle sent successfully
    this._samples = []; // [time, bytes] wire samples for the speed
    this._clientToken = `pw-${randomToken()}`;
    this._controller = null;
    this._cancelling = false;
    this.promise = new Promise((resolve, reject) => {
      this._resolve = resolve;
      this._reject = reject;
    });
    // The promise is also reported through events: do not make an unawaited one "unhandled".
    this.promise.catch(() => {});
    // Start after the caller had a chance to subscribe with handle.on(...).
    this._running = Promise.resolve().then(() => this._run());
  }

  /** Subscribe to an event (state, progress, part, retry, resume, mismatch, error, success). */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this._listeners.get(type)?.delete(listener);
  }

  _emit(type, detail) {
    for (const listener of this._listeners.get(type) ?? []) {
      try {
        listener(detail, this);
      } catch (error) {
        // A broken listener must not break the upload.
        console.error(error);
      }
    }
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", state);
  }

  /** Stop sending; parts in flight are dropped and sent again on resume(). */
  pause() {
    if (!["preparing", "uploading"].includes(this.state)) return false;
    this._setState("paused");
    this._controller?.abort(PAUSED());
    return true;
  }

  /** Continue a paused upload, asking the server what S3 already holds. */
  resume() {
    if (this.state !== "paused") return false;
    this._setState(this.upload ? "uploading" : "preparing");
    this._running = this._running.then(() => this._run());
    return true;
  }

  /** Stop and abort the upload on the server (and in S3). Resolves true once it is aborted. */
  async cancel() {
    if (!["idle", "preparing", "uploading", "paused"].includes(this.state) || this._cancelling) {
      return false;
    }
    this._cancelling = true;
    this._controller?.abort(CANCELLED());
    await this._running;
    if (["completed", "failed"].includes(this.state)) return false; // it ended first
    if (this.upload) {
      try {
        this.upload = await abortUpload(this.upload.id, this.options);
      } catch (error) {
        this._fail(error);
        return false;
      }
    }
    this._setState("cancelled");
    this._reject(CANCELLED());
    return true;
  }

  /** Bytes, parts, speed (bytes/s) and ETA (s) right now. */
  progress() {
    let inflight = 0;
    for (const bytes of this._inflight.values()) inflight += bytes;
    const bytesTotal = this.file.size;
    const bytesUploaded = Math.min(bytesTotal, this._doneBytes + inflight);
    const now = this.options.now();
    const since = now - this.options.speedWindow;
    this._samples = this._samples.filter(([time]) => time > since);
    let speed = null;
    if (this._samples.length && this.state === "uploading") {
      const span = Math.max(1, now - Math.max(since, this._runStartedAt ?? since));
      speed = (this._samples.reduce((sum, [, bytes]) => sum + bytes, 0) * 1000) / span;
    }
    const remaining = bytesTotal - bytesUploaded;
    return {
      state: this.state,
      bytesUploaded,
      bytesTotal,
      bytesSent: this._bytesSent,
      partsUploaded: this._done.size,
      partsTotal: this.upload?.partCount ?? null,
      percent: bytesTotal ? (100 * bytesUploaded) / bytesTotal : this.state === "completed" ? 100 : 0,
      speed,
      eta: remaining === 0 ? 0 : speed ? remaining / speed : null,
    };
  }

  _emitProgress() {
    this._emit("progress", this.progress());
  }

  _fail(error) {
    this.error = error;
    this._setState("failed");
    this._emit("error", error);
    this._reject(error);
  }

  // --- one run: from (re)start to completion, pause or failure ---------------------------------
  async _run() {
    if (this._cancelling || this.state === "paused") return;
    const controller = new AbortController();
    this._controller = controller;
    const signal = controller.signal;
    this._runStartedAt = this.options.now();
    this._samples = [];
    try {
      if (!this.upload) {
        this._setState("preparing");
        await this._findOrCreate(signal);
      } else {
        this._setState("uploading");
        await this._refresh(signal);
      }
      signal.throwIfAborted();
      this._setState("uploading");
      this._emitProgress();
      for (let round = 1; ; round++) {
        await this._sendMissingParts(signal);
        this._setState("completing");
        try {
          const completed = camelize(
            await completeUpload(this.options, signal, this.upload.id, (retry) =>
              this._emit("retry", { ...retry, number: null }),
            ),
          );
          this.upload = completed;
          this._setState("completed");
          this._emitProgress();
          this._emit("success", completed);
          this._resolve(completed);
          return;
        } catch (error) {
          const missing = error?.code === "part_missing" ? error.response?.missingParts : null;
          if (!missing?.length || round >= MAX_COMPLETE_ROUNDS) throw error;
          // S3 does not hold these parts after all: send them again, then ask once more.
          for (const number of missing) this._forget(number);
          this._setState("uploading");
        }
      }
    } catch (error) {
      if (signal.aborted) return; // paused or cancelled: not a failure
      this._fail(error);
    } finally {
      this._inflight.clear();
      if (this._controller === controller) this._controller = null;
    }
  }

  async _findOrCreate(signal) {
    const options = this.options;
    this.fingerprint = await fileFingerprint(this.file);
    signal.throwIfAborted();
    if (options.uploadId) {
      const chosen = await this._getDetail(options.uploadId, signal);
      if (chosen.status !== "uploading") {
        throw new UploadError(`That upload is ${chosen.status}; it cannot be continued.`, {
          code: "upload_not_resumable",
        });
      }
      if (chosen.fingerprint !== this.fingerprint || !(await this._proves(chosen, signal))) {
        this._emit("mismatch", chosen);
        throw new UploadError(
          `"${this.file.name}" is not the file that upload was started with; pick the same file to resume it.`,
          { code: "file_mismatch", response: chosen },
        );
      }
      this._adopt(chosen);
      this._emit("resume", chosen);
      return;
    }
    if (options.resume) {
      // A failed look-up is retried and then fails the upload: never read as "start again".
      const { uploads } = await listUploads(
        { status: "uploading", fingerprint: this.fingerprint },
        { ...options, signal },
      );
      for (const candidate of uploads) {
        if (candidate.size !== this.file.size || candidate.fingerprint !== this.fingerprint) continue;
        const detail = await this._getDetail(candidate.id, signal);
        if (detail.status !== "uploading") continue;
        if (await this._proves(detail, signal)) {
          this._adopt(detail);
          this._emit("resume", detail);
          return;
        }
        // Same fingerprint, other bytes: leave that upload alone and start a new one.
        this._emit("mismatch", detail);
      }
    }
    const body = {
      filename: this.file.name || "file",
      size: this.file.size,
      checksum_algorithm: "SHA256",
      fingerprint: this.fingerprint,
      client_token: this._clientToken,
    };
    if (this.file.type) body.content_type = this.file.type;
    if (options.partSize) body.part_size = options.partSize;
    // No abort signal: a create cut off half-way would leave an upload nobody knows about.
    // Pause and cancel take effect right after it (the same client_token makes retries safe).
    const created = await api(options, undefined, "POST", "", body);
    this._adopt(camelize(created));
  }

  _getDetail(id, signal) {
    return getUpload(id, { ...this.options, signal });
  }

  /** Ask the server (which asks S3) which parts are there; used on every resume. */
  async _refresh(signal) {
    const detail = await this._getDetail(this.upload.id, signal);
    if (detail.status !== "uploading") {
      throw new UploadError(`The upload is ${detail.status} on the server; it cannot continue.`, {
        code: "upload_not_resumable",
        response: detail,
      });
    }
    this._adopt(detail);
  }

  _adopt(detail) {
    this.upload = detail;
    this._done.clear();
    this._doneBytes = 0;
    for (const part of detail.parts ?? []) {
      if (part.etag) {
        const size = part.size ?? this._range(part.number)[1] - this._range(part.number)[0];
        this._done.set(part.number, size);
        this._doneBytes += size;
      }
    }
  }

  _forget(number) {
    if (this._done.has(number)) {
      this._doneBytes -= this._done.get(number);
      this._done.delete(number);
    }
  }

  /** Prove the file holds the bytes already uploaded: hash `verifyParts` of them and compare. */
  async _proves(detail, signal) {
    if (detail.size !== this.file.size || !detail.partSize || detail.checksumAlgorithm !== "SHA256") {
      return false;
    }
    const uploaded = (detail.parts ?? []).filter((part) => part.etag);
    if (!uploaded.length) return true; // nothing to reuse, so nothing to prove
    if (uploaded.some((part) => !part.checksum)) return false;
    const pool = [...uploaded];
    const chosen = [];
    const wanted = Math.min(this.options.verifyParts, pool.length);
    while (chosen.length < wanted) {
      chosen.push(...pool.splice(Math.floor(this.options.random() * pool.length), 1));
    }
    for (const part of chosen) {
      const [start, end] = this._range(part.number, detail.partSize);
      if (part.size != null && part.size !== end - start) return false;
      const checksum = await sha256Base64(this.file.slice(start, end));
      signal.throwIfAborted();
      if (checksum !== part.checksum) return false;
    }
    return true;
  }

  _range(number, partSize = this.upload.partSize) {
    const start = (number - 1) * partSize;
    return [start, Math.min(start + partSize, this.file.size)];
  }

  /** The part's SHA-256, computed once (concurrent callers share the same hashing). */
  _hashPart(number) {
    if (this._checksums.has(number)) return Promise.resolve(this._checksums.get(number));
    let hashing = this._hashing.get(number);
    if (!hashing) {
      const [start, end] = this._range(number);
      hashing = this._readSlots(() => sha256Base64(this.file.slice(start, end)))
        .then((checksum) => {
          this._checksums.set(number, checksum);
          return checksum;
        })
        .finally(() => this._hashing.delete(number));
      this._hashing.set(number, hashing);
    }
    return hashing;
  }

  /** Hash `numbers` (at most `concurrency` parts in memory) and presign them in one call. */
  async _signBatch(numbers, signal) {
    await Promise.all(numbers.map((number) => this._hashPart(number)));
    signal.throwIfAborted();
    const body = { parts: numbers.map((number) => ({ number, checksum: this._checksums.get(number) })) };
    const data = await api(this.options, signal, "POST", `${this.upload.id}/sign/`, body, (retry) =>
      this._emit("retry", { ...retry, number: null }),
    );
    const signed = data.parts.map((part) => ({
      number: part.number,
      url: part.url,
      method: part.method || "PUT",
      headers: part.headers || {},
      expiresAt: Date.parse(part.expires_at),
    }));
    if (signed.length && !this._urlLifetime) {
      this._urlLifetime = Math.max(0, signed[0].expiresAt - this.options.now());
    }
    return signed;
  }

  /**
   * How many parts the next sign call takes from the front of `pending`: every part already
   * hashed (at least enough to keep `concurrency` workers busy), capped by `signBatchSize` and
   * by how many parts can be sent, at the current speed, in half a URL's lifetime.
   */
  _nextBatchSize(pending, signedAhead) {
    const options = this.options;
    let size = 0;
    while (size < pending.length && size < options.signBatchSize && this._checksums.has(pending[size])) {
      size++;
    }
    const speed = this.progress().speed;
    if (!speed || !this._urlLifetime) {
      size = 0; // until a speed is measured, sign only what keeps the workers busy
    } else {
      const usable = Math.max(0, this._urlLifetime - EXPIRY_MARGIN_MS) / 2000; // seconds
      const partSize = this.upload.partSize || 1;
      size = Math.min(size, Math.floor((speed * usable) / partSize) - signedAhead);
    }
    return Math.min(pending.length, options.signBatchSize, Math.max(size, options.concurrency));
  }

  async _sendMissingParts(outerSignal) {
    const options = this.options;
    // One fatal error stops every worker of this run.
    const run = new AbortController();
    const forward = () => run.abort(outerSignal.reason);
    outerSignal.addEventListener("abort", forward, { once: true });
    const signal = run.signal;
    const fail = (error) => {
      if (!signal.aborted) run.abort(error);
    };

    const pending = [];
    for (let number = 1; number <= this.upload.partCount; number++) {
      if (!this._done.has(number)) pending.push(number);
    }
    // Hash ahead of sending, in order, so that sign calls find many parts ready to sign.
    const hashAhead = mapLimit(pending.slice(), options.concurrency, (number) =>
      signal.aborted ? null : this._hashPart(number),
    );
    hashAhead.catch(fail);

    const ready = [];
    let preparing = null;
    const prepare = () => {
      if (!preparing && pending.length) {
        const batch = pending.splice(0, this._nextBatchSize(pending, ready.length));
        preparing = this._signBatch(batch, signal)
          .then((signed) => ready.push(...signed))
          .catch(fail)
          .finally(() => {
            preparing = null;
          });
      }
      return preparing;
    };

    // ETags are reported in batches: every `reportBatchSize` parts or `reportInterval` ms,
    // and all of them before completing. One report is in flight at a time. A part S3 holds
    // but not yet reported is not lost if the run stops: the server reconciles with ListParts.
    const reports = [];
    let reporting = null;
    let timer = null;
    const flushReports = (all = false) => {
      if (reporting || !reports.length) return;
      if (!all && reports.length < options.reportBatchSize) {
        timer ??= setTimeout(() => {
          timer = null;
          flushReports(true);
        }, options.reportInterval);
        return;
      }
      clearTimeout(timer);
      timer = null;
      const batch = reports.splice(0, 500);
      reporting = api(options, signal, "POST", `${this.upload.id}/parts/`, { parts: batch })
        .then(() => {
          reporting = null;
          flushReports(all);
        })
        .catch((error) => {
          reporting = null;
          fail(error);
        });
    };
    const report = (part) => {
      reports.push(part);
      flushReports();
    };

    const worker = async () => {
      for (;;) {
        signal.throwIfAborted();
        // Sign the next batch while the current URLs are still being used.
        if (ready.length < options.concurrency) prepare();
        const part = ready.shift();
        if (part) {
          const etag = await this._sendPart(part, signal);
          report({ number: part.number, etag, checksum: this._checksums.get(part.number) });
        } else if (preparing) {
          await preparing;
        } else {
          return;
        }
      }
    };

    try {
      await Promise.all(Array.from({ length: options.concurrency }, () => worker().catch(fail)));
      signal.throwIfAborted();
      flushReports(true);
      while ((reporting || reports.length) && !signal.aborted) {
        await reporting;
        flushReports(true);
      }
      signal.throwIfAborted();
    } finally {
      clearTimeout(timer);
      if (outerSignal.aborted && !this._cancelling && reports.length) {
        // Paused: tell the server what S3 already holds, so that its view (the list of
        // unfinished uploads, another device) is current. Best effort: a resume asks anyway.
        const parts = reports.splice(0);
        api(options, new AbortController().signal, "POST", `${this.upload.id}/parts/`, { parts }).catch(
          () => {},
        );
      }
      run.abort(); // stops the hash-ahead pipeline when the run ends early
      outerSignal.removeEventListener("abort", forward);
    }
  }

  /** PUT one part until S3 takes it: retries, re-signs expired URLs, detects stalls. */
  async _sendPart(signed, signal) {
    const options = this.options;
    const number = signed.number;
    const [start, end] = this._range(number);
    let part = signed;
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      if (!(part.expiresAt - options.now() > EXPIRY_MARGIN_MS)) {
        [part] = await this._signBatch([number], signal);
      }
      let error = null;
      let result = null;
      const attemptController = new AbortController();
      const forward = () => attemptController.abort(signal.reason);
      signal.addEventListener("abort", forward, { once: true });
      let stalled = false;
      let watchdog = null;
      const resetWatchdog = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          stalled = true;
          attemptController.abort(new UploadError("stalled", { code: "stalled" }));
        }, options.stallTimeout);
      };
      this._inflight.set(number, 0);
      resetWatchdog();
      try {
        result = await options.putPart({
          url: part.url,
          method: part.method,
          headers: part.headers,
          body: this.file.slice(start, end),
          signal: attemptController.signal,
          onProgress: (loaded) => {
            if (attemptController.signal.aborted) return;
            resetWatchdog();
            this._onBytes(number, loaded);
          },
        });
      } catch (cause) {
        if (signal.aborted) {
          this._inflight.delete(number);
          this._emitProgress();
          throw signal.reason;
        }
        error = new UploadError(
          stalled
            ? `Part ${number} stopped moving for ${Math.round(options.stallTimeout / 1000)} s.`
            : `Part ${number} could not be sent: the connection failed.`,
          { code: stalled ? "stalled" : "network_error", retryable: true, cause },
        );
      } finally {
        clearTimeout(watchdog);
        signal.removeEventListener("abort", forward);
      }
      this._inflight.delete(number);
      if (!error && result.status >= 200 && result.status < 300) {
        if (!result.etag) {
          throw new UploadError(ETAG_HELP, { code: "etag_not_exposed", status: result.status });
        }
        const size = end - start;
        this._done.set(number, size);
        this._doneBytes += size;
        this._bytesSent += size;
        this._emit("part", { number, size, etag: result.etag, checksum: this._checksums.get(number) });
        this._emitProgress();
        return result.etag.replace(/^"|"$/g, "");
      }
      error ??= partError(number, result);
      this._emitProgress();
      if (!error.retryable || attempt >= options.retryDelays.length) throw error;
      // An expired or possibly expired URL is signed again before the next attempt.
      if (error.code === "url_expired") part = { ...part, expiresAt: 0 };
      const delay = backoffDelay(options.retryDelays, attempt, options.random);
      this._emit("retry", { number, attempt: attempt + 1, delay, error });
      await options.sleep(delay, signal);
    }
  }

  _onBytes(number, loaded) {
    const before = this._inflight.get(number) ?? 0;
    if (loaded > before) this._samples.push([this.options.now(), loaded - before]);
    this._inflight.set(number, loaded);
    this._emitProgress();
  }
}

function randomToken() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}
