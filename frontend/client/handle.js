/**
 * The upload handle: one file's upload from start (or resume) to completion, its state and
 * events. It owns the part loop: hash parts ahead of sending (bounded memory), sign them in
 * batches, PUT them (the very bytes that were hashed), report ETags in batches, complete.
 * Everything that talks to the network goes through api.js (JSON) and options.putPart (parts),
 * both under the one retry policy of retry.js.
 */
import { abortUpload, apiRequest, camelize, completeUpload, getUpload } from "./api.js";
import { digestBase64 } from "./digests.js";
import { CANCELLED, ETAG_HELP, PAUSED, UploadError } from "./errors.js";
import {
  fileFingerprint,
  partCount,
  partRange,
  planPartSize,
  toHex,
} from "./fingerprint.js";
import { PartHasher } from "./hasher.js";
import { resolveOptions } from "./options.js";
import { batchSizes, ReportQueue } from "./queues.js";
import { isConnectionFailure, withRetries } from "./retry.js";
import { span, traced } from "./trace.js";
import { partError } from "./transport.js";

/** A presigned URL this close to its expiry is signed again before use. */
export const EXPIRY_MARGIN_MS = 60_000;

/** Thrown inside a part's attempt when its re-sign finds it leased to another session. */
const LEASED = new UploadError("The part is being sent by another session.", { code: "part_leased" });

/** How many times the part loop asks again after the server says parts are missing or corrupted. */
const MAX_COMPLETE_ROUNDS = 3;

/** The part digests a client can compute (the server's `checksum_algorithm`, but none). */
const ALGORITHMS = new Set(["SHA256", "CRC32C", "MD5"]);

/**
 * The part digest the server last chose for a new upload, per API endpoint, in this page: the
 * next file hashes its first parts with it, so the create call can sign them (the server signs
 * nothing in a create whose parts carry another digest than the one it chooses).
 */
const CHOSEN_ALGORITHMS = new Map();

const CALLBACKS = {
  state: "onStateChange",
  progress: "onProgress",
  part: "onPartComplete",
  retry: "onRetry",
  resume: "onResume",
  mismatch: "onMismatch",
  error: "onError",
  success: "onSuccess",
  connection: "onConnection",
  sessions: "onSessions",
};

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
    /** This handle's session id, sent on create, sign and report (contract: one per attempt). */
    this.session = this.options.session ?? `pw-${randomToken()}`;
    /** Live sessions other than this one uploading the same upload, as the server last said. */
    this.otherSessions = 0;
    this._listeners = new Map();
    for (const [type, name] of Object.entries(CALLBACKS)) {
      if (typeof this.options[name] === "function") this.on(type, this.options[name]);
    }
    const { concurrency, lookahead, hashAhead, sendHashedBytes, hashWorkers } = this.options;
    // Every part read into memory holds a slot until it is sent or dropped, so at most
    // (concurrency + lookahead) parts are in memory whoever reads them. With hashAhead "batch"
    // one of those slots is for parts read only to be hashed (their bytes are not kept).
    // PUTting Blob slices (the default), no bytes are kept: two parts are read at a time only
    // to be hashed, and the browser streams the slices it sends from the file.
    const slots = concurrency + lookahead;
    const transient = hashAhead === "batch" && slots > 1 ? 1 : 0;
    this._hasher = sendHashedBytes
      ? new PartHasher(file, { buffers: slots - transient })
      : new PartHasher(file, { buffers: slots, keeps: false, readers: Math.max(2, hashWorkers), workers: hashWorkers });
    this._urlLifetime = null; // ms a presigned URL lives (limits.urlExpiresIn, or learnt)
    // The digest parts are hashed with: before create the one asked for, then the upload's own
    // checksumAlgorithm (the server's choice); "" hashes nothing.
    this._algorithm = null;
    this._done = new Map(); // part number -> size, for parts S3 holds
    this._doneBytes = 0;
    this._highWater = 0; // bytesUploaded never goes below what it once was
    this._inflight = new Map(); // part number -> bytes sent so far in the current attempt
    this._bytesSent = 0; // bytes of parts this handle sent successfully
    this._samples = []; // [time, bytes] wire samples for the speed
    this._connection = null; // { attempt, retryAt } while the connection is lost
    this._wakers = new Set(); // retry waits to cut short when the network is back
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

  /** Subscribe to an event (state, progress, part, retry, resume, mismatch, error, success, connection, sessions). */
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
    this._hasher.close();
    this._setState("cancelled");
    this._reject(CANCELLED());
    return true;
  }

  /**
   * Bytes, parts, speed (bytes/s) and ETA (s) right now. `bytesUploaded` never decreases;
   * `stalled` is true while the connection is lost (speed and ETA are then null).
   */
  progress() {
    let inflight = 0;
    for (const bytes of this._inflight.values()) inflight += bytes;
    const bytesTotal = this.file.size;
    this._highWater = Math.max(this._highWater, Math.min(bytesTotal, this._doneBytes + inflight));
    const bytesUploaded = this._highWater;
    const now = this.options.now();
    const since = now - this.options.speedWindow;
    this._samples = this._samples.filter(([time]) => time > since);
    const stalled = Boolean(this._connection);
    let speed = null;
    if (this._samples.length && this.state === "uploading" && !stalled) {
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
      stalled,
    };
  }

  _emitProgress() {
    this._emit("progress", this.progress());
  }

  _fail(error) {
    this.error = error;
    this._hasher.close();
    this._setState("failed");
    this._emit("error", error);
    this._reject(error);
  }

  _succeed(completed) {
    this.upload = completed;
    this._hasher.close();
    for (const part of completed.parts ?? []) this._markDone(part.number, part.size);
    this._setState("completed");
    this._emitProgress();
    this._emit("success", completed);
    this._resolve(completed);
  }

  // --- connection and sessions ------------------------------------------------------------------
  /** Hooks for the retry loop: connection lost/restored events and the `online` wake-up. */
  _hooks(number = null) {
    return {
      onRetry: (retry) => {
        this._emit("retry", { number, ...retry });
        if (isConnectionFailure(retry.error)) {
          this._connection = { attempt: retry.attempt, retryAt: this.options.now() + retry.delay };
          this._emit("connection", { state: "lost", ...this._connection });
          this._emitProgress();
        }
      },
      onSuccess: () => this._restored(),
      wake: (callback) => {
        this._wakers.add(callback);
        return () => this._wakers.delete(callback);
      },
    };
  }

  _restored() {
    if (!this._connection) return;
    this._connection = null;
    this._emit("connection", { state: "restored" });
    this._emitProgress();
  }

  _onOnline = () => {
    for (const wake of [...this._wakers]) wake();
  };

  _listenOnline() {
    const target = this.options.onlineTarget ?? (typeof window === "undefined" ? null : window);
    target?.addEventListener?.("online", this._onOnline);
    return () => target?.removeEventListener?.("online", this._onOnline);
  }

  /** Note the server's count of other live sessions; `sessions` is emitted when it changes. */
  _noteSessions(data) {
    const others = data?.other_sessions ?? data?.otherSessions;
    if (typeof others !== "number" || others === this.otherSessions) return;
    this.otherSessions = others;
    this._emit("sessions", { others });
  }

  _api(signal, method, path, body) {
    return apiRequest(this.options, signal, method, path, body, this._hooks());
  }

  // --- one run: from (re)start to completion, pause or failure ---------------------------------
  async _run() {
    if (this._cancelling || this.state === "paused") return;
    const controller = new AbortController();
    this._controller = controller;
    const signal = controller.signal;
    this._runStartedAt = this.options.now();
    this._samples = [];
    const stopListening = this._listenOnline();
    try {
      let signed = { signed: [], leased: [] };
      if (!this.upload) {
        this._setState("preparing");
        signed = await this._findOrCreate(signal);
      } else {
        this._setState("uploading");
        await this._refresh(signal);
      }
      signal.throwIfAborted();
      if (this.upload.status === "completed") return this._succeed(this.upload);
      this._setState("uploading");
      this._emitProgress();
      for (let round = 1; ; round++) {
        await this._sendMissingParts(signal, signed);
        signed = { signed: [], leased: [] };
        this._setState("completing");
        try {
          const completed = camelize(await completeUpload(this.options, signal, this.upload.id, this._hooks()));
          this._succeed(completed);
          return;
        } catch (error) {
          const again = resendable(error);
          if (!again?.length || round >= MAX_COMPLETE_ROUNDS) throw error;
          // S3 does not hold these parts after all (part_missing), or holds other bytes than
          // the ones signed (part_mismatch: corrupted on the way, and the store verified no
          // digest): send them again, then ask once more.
          for (const number of again) this._forget(number);
          this._setState("uploading");
        }
      }
    } catch (error) {
      if (signal.aborted) return; // paused or cancelled: not a failure
      // Another session may have finished this upload first: then the "gone" or "conflict"
      // this run met is that success, not a failure.
      if (this.upload && ["upload_gone", "upload_conflict", "upload_not_resumable"].includes(error?.code)) {
        const detail = await this._getDetail(this.upload.id, signal).catch(() => null);
        if (detail?.status === "completed" && detail.size === this.file.size) {
          this._succeed(detail);
          return;
        }
      }
      this._fail(error);
    } finally {
      stopListening();
      this._inflight.clear();
      this._hasher.dropAll();
      if (this._controller === controller) this._controller = null;
    }
  }

  /**
   * Start or resume in one call: POST /api/uploads/ with `resume: true` and the first parts'
   * checksums to sign. Returns the parts of that answer: { signed, leased } (possibly none).
   */
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
      return { signed: [], leased: [] };
    }
    // Hash the first parts before asking, so that the answer carries their URLs. The part size
    // is the one the server will plan (the option, or its default raised for 10,000 parts), the
    // digest the one it chose last time (SHA256 at first); if it answers another plan or digest,
    // these checksums are dropped and the parts hashed and signed again.
    const asked = this._askedAlgorithm();
    this._algorithm = asked;
    this._hasher.use(planPartSize(this.file.size, options.partSize ?? undefined), asked);
    const first = await this._firstHashed(signal);
    // Without checksums nothing proves an unfinished upload holds this file's bytes.
    let resume = options.resume && options.checksums;
    for (;;) {
      const body = {
        filename: this.file.name || "file",
        size: this.file.size,
        fingerprint: this.fingerprint,
        client_token: this._clientToken,
        session: this.session,
      };
      // Only a preference: the answer's checksum_algorithm is the server's choice.
      if (asked) body.checksum_algorithm = asked;
      if (this.file.type) body.content_type = this.file.type;
      if (options.partSize) body.part_size = options.partSize;
      if (resume) body.resume = true;
      if (first.length) body.sign = { parts: first.map((number) => ({ number, checksum: this._hasher.checksum(number) })) };
      // No abort signal: a create cut off half-way would leave an upload nobody knows about.
      // Pause and cancel take effect right after it (the same client_token makes retries safe).
      const data = await traced("create", () => this._api(undefined, "POST", "", body));
      const answer = camelize(data);
      this._noteSessions(data);
      if (answer.resumed) {
        if (answer.status === "uploading" && (await this._proves(answer, signal))) {
          const signed = this._adoptCreated(answer, data);
          this._emit("resume", answer);
          return signed;
        }
        // Same fingerprint, other bytes: leave that upload alone and start a new one.
        this._emit("mismatch", answer);
        resume = false;
        continue;
      }
      this._remember(asked, answer.checksumAlgorithm ?? "");
      return this._adoptCreated(answer, data);
    }
  }

  /**
   * Hash the first parts (in order) and return their numbers, for the create call to sign.
   * Each later sign call comes when a worker runs out of URLs and takes every part hashed by
   * then, so the batches grow by the hasher's lead over the link (about 2× here): starting
   * from twice the buffers (no bytes are kept when Blob slices are sent), a GiB of 8 MiB parts
   * costs create + two sign calls. Without checksums there is nothing to wait for.
   */
  async _firstHashed(signal) {
    const hasher = this._hasher;
    const parts = partCount(this.file.size, hasher.partSize);
    const wanted = !this._algorithm
      ? this._signLimits().sign
      : hasher.keeps
        ? hasher.slots.limit
        : 2 * hasher.slots.limit;
    const numbers = Array.from({ length: Math.min(parts, wanted) }, (_, i) => i + 1);
    await Promise.all(numbers.map((number) => this._hash(number, signal)));
    return numbers.slice(0, this._signLimits().sign);
  }

  /**
   * The digest to hash the first parts with and to ask for: none without checksums, else the
   * one the server chose last time for this endpoint in this page, else SHA256.
   */
  _askedAlgorithm() {
    if (!this.options.checksums) return "";
    return CHOSEN_ALGORITHMS.get(this.options.endpoint) ?? "SHA256";
  }

  /**
   * Note the server's choice for a new upload (asked for `asked`), for the endpoint's next file.
   * An answer of none to a client that asked for none says nothing of what it would choose.
   */
  _remember(asked, chosen) {
    if ((asked || chosen) && (chosen === "" || ALGORITHMS.has(chosen))) CHOSEN_ALGORITHMS.set(this.options.endpoint, chosen);
  }

  /** The part's checksum (hashing it once), or undefined when the upload carries none. */
  _hash(number, signal, keep) {
    return this._algorithm ? this._hasher.hash(number, signal, keep) : undefined;
  }

  /** Whether part `number` may be signed now: its checksum is known, or none is wanted. */
  _hashed(number) {
    return !this._algorithm || this._hasher.has(number);
  }

  /**
   * Adopt a create answer; its signed parts count only if signed for the plan it chose and the
   * digest the parts were hashed with (the server signs none otherwise; they are hashed again
   * with the upload's digest and signed in the part loop).
   */
  _adoptCreated(answer, data) {
    const planned = this._hasher.partSize;
    const hashedWith = this._algorithm;
    this._adopt(answer);
    if (answer.partSize !== planned || this._algorithm !== hashedWith) return { signed: [], leased: [] };
    return {
      signed: this._toSigned(data.signed ?? []).filter((part) => !this._done.has(part.number)),
      leased: (data.leased ?? []).filter((number) => !this._done.has(number)),
    };
  }

  _getDetail(id, signal) {
    return getUpload(id, { ...this.options, signal, session: this.session, hooks: this._hooks() });
  }

  /** Ask the server (which asks S3) which parts are there; used on every resume. */
  async _refresh(signal) {
    let detail = await this._getDetail(this.upload.id, signal);
    // Another session is completing it: its answer comes shortly (completed, or back to
    // uploading with the parts S3 lacks).
    while (detail.status === "completing") {
      await this.options.sleep(this.options.leasePollInterval, signal);
      detail = await this._getDetail(this.upload.id, signal);
    }
    if (detail.status === "completed") {
      this.upload = detail;
      return;
    }
    if (detail.status !== "uploading") {
      throw new UploadError(`The upload is ${detail.status} on the server; it cannot continue.`, {
        code: "upload_not_resumable",
        response: detail,
      });
    }
    this._adopt(detail);
  }

  /**
   * Take the server's upload; parts S3 acknowledged to this handle are not forgotten. Its
   * checksumAlgorithm is the digest every part is hashed with from now on (whatever was asked).
   */
  _adopt(detail) {
    this.upload = detail;
    this._urlLifetime ??= detail.limits?.urlExpiresIn ? detail.limits.urlExpiresIn * 1000 : null;
    this._algorithm = detail.checksumAlgorithm ?? "";
    this._hasher.use(detail.partSize, this._algorithm);
    this._noteSessions(detail);
    for (const part of detail.parts ?? []) {
      if (part.etag) this._markDone(part.number, part.size);
    }
  }

  _markDone(number, size) {
    if (this._done.has(number)) return;
    const [start, end] = this._range(number);
    this._done.set(number, size ?? end - start);
    this._doneBytes += this._done.get(number);
    this._hasher.drop(number);
    this._hasher.changed();
  }

  _forget(number) {
    if (this._done.has(number)) {
      this._doneBytes -= this._done.get(number);
      this._done.delete(number);
    }
  }

  /**
   * Prove the file holds the bytes already uploaded: hash `verifyParts` of them with the upload's
   * digest and compare with the server's checksums. An upload without one cannot be proven.
   */
  async _proves(detail, signal) {
    const algorithm = detail.checksumAlgorithm;
    if (detail.size !== this.file.size || !detail.partSize || !ALGORITHMS.has(algorithm)) {
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
      const [start, end] = partRange(part.number, detail.partSize, this.file.size);
      if (part.size != null && part.size !== end - start) return false;
      const checksum = await digestBase64(algorithm, await this.file.slice(start, end).arrayBuffer());
      signal.throwIfAborted();
      if (checksum !== part.checksum) return false;
    }
    return true;
  }

  _range(number, partSize = this._hasher.partSize ?? this.upload.partSize) {
    return partRange(number, partSize, this.file.size);
  }

  _signLimits() {
    return batchSizes(this.upload?.limits, this.options);
  }

  /** Presign `numbers` (already hashed) in one call; parts leased to another session are left out. */
  async _signBatch(numbers, signal) {
    // A part not hashed yet is kept only while a buffer is free: waiting for a buffer here
    // could wait for parts that this very call must sign before they can be sent.
    const hasher = this._hasher;
    let free = hasher.slots.limit - hasher.slots.used;
    const keep = (number) => hasher.started(number) || free-- > 0;
    await Promise.all(numbers.map((number) => this._hash(number, signal, keep(number))));
    signal.throwIfAborted();
    const body = {
      parts: numbers.map((number) => ({ number, checksum: this._hasher.checksum(number) })),
      session: this.session,
    };
    const end = span("sign");
    let data;
    try {
      data = await this._api(signal, "POST", `${this.upload.id}/sign/`, body);
    } finally {
      end();
    }
    this._noteSessions(data);
    return { signed: this._toSigned(data.parts ?? []), leased: data.leased ?? [] };
  }

  /**
   * Sign `numbers`; while another session uploads too, first ask the server what S3 holds, so
   * that parts the other one already sent are not signed (and sent) again.
   */
  async _signShared(numbers, signal) {
    const shared = this.otherSessions > 0;
    if (shared) {
      await this._refresh(signal);
      numbers = numbers.filter((number) => !this._done.has(number));
      if (!numbers.length || this.upload.status !== "uploading") return { signed: [], leased: [] };
    }
    const answer = await this._signBatch(numbers, signal);
    if (!shared && this.otherSessions > 0) {
      // This answer is the first news of another session: it may have sent some of these.
      await this._refresh(signal);
      answer.signed = answer.signed.filter((part) => !this._done.has(part.number));
    }
    return answer;
  }

  _toSigned(parts) {
    const signed = parts.map((part) => ({
      number: part.number,
      url: part.url,
      method: part.method || "PUT",
      headers: part.headers || {},
      expiresAt: Date.parse(part.expires_at ?? part.expiresAt),
    }));
    if (signed.length && !this._urlLifetime) {
      this._urlLifetime = Math.max(0, signed[0].expiresAt - this.options.now());
    }
    return signed;
  }

  /**
   * How many parts the next sign call takes from the front of `pending`: every part already
   * hashed (at least `concurrency`, waiting for the hasher when it is behind), capped by the
   * sign batch size and by how many parts can be sent, at the current speed, in half a URL's
   * lifetime; before any speed is measured, only as many as the buffers hold.
   */
  _nextBatchSize(pending, signedAhead) {
    const options = this.options;
    const limit = this._signLimits().sign;
    let size = 0;
    while (size < pending.length && size < limit && this._hashed(pending[size])) size++;
    const speed = this.progress().speed;
    if (!speed || !this._urlLifetime) {
      size = Math.min(size, options.concurrency + options.lookahead);
    } else {
      const usable = Math.max(0, this._urlLifetime - EXPIRY_MARGIN_MS) / 2000; // seconds
      const partSize = this.upload.partSize || 1;
      size = Math.min(size, Math.floor((speed * usable) / partSize) - signedAhead);
    }
    return Math.min(pending.length, limit, Math.max(size, options.concurrency));
  }

  async _sendMissingParts(outerSignal, atStart = { signed: [], leased: [] }) {
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
    const ready = atStart.signed.filter((part) => !this._done.has(part.number));
    let leased = atStart.leased.filter((number) => !this._done.has(number));
    const hasher = this._hasher;
    for (const number of leased) hasher.drop(number);
    const taken = new Set([...ready.map((part) => part.number), ...leased]);
    const toSign = pending.filter((number) => !taken.has(number));
    let nextToHash = 0; // index in toSign of the next part to hash (parts before it are hashed)

    // Hash ahead of sending, in order. The buffer slots bound how far ("buffer"); with
    // hashAhead "batch" the hasher also runs past the buffers (reading parts only to hash
    // them) while fewer than a sign batch are hashed and unsigned, so that sign calls find
    // many parts ready to sign.
    const batchMode = options.hashAhead === "batch";
    const hashAhead = async () => {
      while (nextToHash < toSign.length && !signal.aborted) {
        const number = toSign[nextToHash];
        const room = hasher.room;
        if (batchMode && !room && nextToHash >= this._signLimits().sign) {
          await hasher.whenChanged(signal);
          continue;
        }
        nextToHash++;
        if (!hasher.has(number) && !this._done.has(number)) await hasher.hash(number, signal, room || !batchMode);
      }
    };
    const hashers = Array.from({ length: this._algorithm ? 2 : 0 }, () => hashAhead().catch(fail));

    let preparing = null;
    const prepare = () => {
      if (!preparing && toSign.length) {
        const batch = toSign.splice(0, this._nextBatchSize(toSign, ready.length));
        nextToHash = Math.max(0, nextToHash - batch.length);
        hasher.changed();
        preparing = this._signShared(batch, signal)
          .then(({ signed, leased: held }) => {
            ready.push(...signed);
            leased.push(...held.filter((number) => !this._done.has(number)));
            for (const number of held) hasher.drop(number);
          })
          .catch(fail)
          .finally(() => {
            preparing = null;
          });
      }
      return preparing;
    };

    const limits = () => this._signLimits();
    const reports = new ReportQueue({
      send: (parts) => this._report(parts, signal),
      batchSize: () => limits().report,
      interval: () => limits().reportInterval,
      onError: fail,
    });

    const worker = async () => {
      for (;;) {
        signal.throwIfAborted();
        // Sign the next batch when the URLs run out: the later the call, the more parts the
        // hasher has ready for it (the parts in flight hide its round trip).
        if (!ready.length) prepare();
        const part = ready.shift();
        if (part) {
          const etag = await this._sendPart(part, signal);
          if (etag === null) leased.push(part.number);
          else reports.push({ number: part.number, etag, checksum: hasher.checksum(part.number) });
        } else if (preparing) {
          await traced("sign-wait", () => preparing); // a worker with no URL to send
        } else {
          return;
        }
      }
    };

    try {
      await Promise.all(Array.from({ length: options.concurrency }, () => worker().catch(fail)));
      signal.throwIfAborted();
      await traced("report-wait", () => reports.drain(signal));
      signal.throwIfAborted();
      // Parts another live session holds: wait until S3 has them (or their lease lapses and
      // they come back to us), then complete. Two sessions finish one upload together.
      while (leased.length) {
        await options.sleep(options.leasePollInterval, signal);
        await this._refresh(signal);
        if (this.upload.status === "completed") return;
        leased = leased.filter((number) => !this._done.has(number));
        if (!leased.length) break;
        const { signed, leased: held } = await this._signBatch(leased, signal);
        leased = held.filter((number) => !this._done.has(number));
        if (signed.length) {
          ready.push(...signed);
          await Promise.all(Array.from({ length: Math.min(options.concurrency, signed.length) }, () => worker().catch(fail)));
          signal.throwIfAborted();
          await reports.drain(signal);
          signal.throwIfAborted();
        }
      }
    } finally {
      reports.stopTimer();
      if (outerSignal.aborted && !this._cancelling && reports.waiting.length) {
        // Paused: tell the server what S3 already holds, so that its view (the list of
        // unfinished uploads, another device) is current. Best effort: a resume asks anyway.
        const parts = reports.takeAll();
        this._report(parts, new AbortController().signal).catch(() => {});
      }
      run.abort(); // stops the hash-ahead pipeline when the run ends early
      await Promise.allSettled(hashers);
      hasher.dropAll();
      outerSignal.removeEventListener("abort", forward);
    }
  }

  async _report(parts, signal) {
    const data = await this._api(signal, "POST", `${this.upload.id}/parts/`, { parts, session: this.session });
    this._noteSessions(data);
    return data;
  }

  /** PUT one part until S3 takes it: retries, re-signs expired URLs, detects stalls. */
  async _sendPart(signed, signal) {
    const options = this.options;
    const number = signed.number;
    let part = signed;
    const attempt = async () => {
      if (!(part.expiresAt - options.now() > EXPIRY_MARGIN_MS)) {
        const { signed: fresh } = await this._signBatch([number], signal);
        if (!fresh.length) throw LEASED;
        [part] = fresh;
      }
      return this._putOnce(part, signal);
    };
    const hooks = {
      ...this._hooks(number),
      // An expired or possibly expired URL is signed again before the next attempt.
      beforeRetry: (error) => {
        if (error.resign) part = { ...part, expiresAt: 0 };
      },
    };
    try {
      return await withRetries(options, signal, attempt, hooks);
    } catch (error) {
      if (error === LEASED) return null; // another live session sends it: not ours to send
      throw error;
    } finally {
      this._hasher.drop(number);
    }
  }

  /** One PUT of one part. Resolves with its ETag; throws a classified UploadError. */
  async _putOnce(part, signal) {
    const options = this.options;
    const number = part.number;
    const [start, end] = this._range(number);
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
    // A Blob slice, which Chromium streams from the file; or, with sendHashedBytes, the bytes
    // hashed for this part when they are still in memory (no second read, but a copy).
    const body = (options.sendHashedBytes && this._hasher.bytes(number)) || this.file.slice(start, end);
    this._inflight.set(number, 0);
    resetWatchdog();
    const endSpan = span("put");
    let result;
    try {
      result = await options.putPart({
        url: part.url,
        method: part.method,
        headers: part.headers,
        body,
        signal: attemptController.signal,
        onProgress: (loaded) => {
          if (attemptController.signal.aborted) return;
          resetWatchdog();
          this._onBytes(number, loaded);
        },
      });
    } catch (cause) {
      this._inflight.delete(number);
      this._emitProgress();
      if (signal.aborted) throw signal.reason;
      throw new UploadError(
        stalled
          ? `Part ${number} stopped moving for ${Math.round(options.stallTimeout / 1000)} s.`
          : `Part ${number} could not be sent: the connection failed.`,
        { code: stalled ? "stalled" : "network_error", retryable: true, cause },
      );
    } finally {
      endSpan();
      clearTimeout(watchdog);
      signal.removeEventListener("abort", forward);
    }
    this._inflight.delete(number);
    if (result.status >= 200 && result.status < 300) {
      if (!result.etag) {
        throw new UploadError(ETAG_HELP, { code: "etag_not_exposed", status: result.status });
      }
      const size = end - start;
      this._markDone(number, size);
      this._bytesSent += size;
      this._emit("part", { number, size, etag: result.etag, checksum: this._hasher.checksum(number) });
      this._emitProgress();
      return result.etag.replace(/^"|"$/g, "");
    }
    this._emitProgress();
    throw partError(number, result);
  }

  _onBytes(number, loaded) {
    const before = this._inflight.get(number) ?? 0;
    if (loaded > before) this._samples.push([this.options.now(), loaded - before]);
    this._inflight.set(number, loaded);
    this._emitProgress();
  }
}

/** The parts a failed completion asks to be sent again (part_missing, part_mismatch), if any. */
function resendable(error) {
  if (error?.code === "part_missing") return error.response?.missingParts;
  if (error?.code === "part_mismatch") return error.response?.parts;
  return null;
}

function randomToken() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return toHex(crypto.getRandomValues(new Uint8Array(16)));
}
