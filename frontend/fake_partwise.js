// The test doubles of the JS client's tests: an in-memory Partwise server plus S3
// (FakePartwise), reachable through the client's injectable `fetch` and `putPart`, and small
// helpers. Not a test file itself: client.test.js and schema.test.js import it; schema.test.js
// holds the fake's answers (and the client's requests) to the server's OpenAPI schema.
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";

export const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");
export const md5 = (bytes) => createHash("md5").update(bytes).digest("base64");

/** CRC32C (Castagnoli, reflected 0x82f63b78), bit by bit: the fake's own, not the client's. */
export function crc32c(bytes) {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0x82f63b78 & -(crc & 1));
  }
  crc = ~crc >>> 0;
  return Buffer.from([crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff]).toString("base64");
}

/** The part digest `algorithm` of `bytes` as S3 takes it (base64 of the raw digest). */
export const DIGESTS = { SHA256: sha256, CRC32C: crc32c, MD5: md5 };

/** The header that carries each algorithm's digest in a part PUT. */
export const DIGEST_HEADERS = { SHA256: "x-amz-checksum-sha256", CRC32C: "x-amz-checksum-crc32c", MD5: "Content-MD5" };

/** The length of each algorithm's checksum (base64 of 32, 4 and 16 bytes). */
const CHECKSUM_LENGTHS = { SHA256: 44, CRC32C: 8, MD5: 24 };

export function bytesOf(size, seed = 1) {
  const bytes = new Uint8Array(size);
  let state = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

export function makeFile(size, { name = "data.bin", seed = 1, lastModified = 1700000000000, bytes } = {}) {
  return new File([bytes ?? bytesOf(size, seed)], name, { lastModified, type: "application/octet-stream" });
}

export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const tick = () => new Promise((resolve) => setImmediate(resolve));

// Waits by wall-clock time, not by a count of turns: WebCrypto digests run on libuv's thread
// pool, so on a loaded machine they can take many more event-loop turns than usual.
export async function until(predicate, what = "condition", timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

export const json = (status, body) =>
  new Response(body === undefined ? "" : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });

/**
 * An in-memory Partwise server plus S3, reachable through `fetch` and `putPart`. It keeps the
 * shared contract of issue 12: `limits` in every upload JSON, sessions (a part signed by a
 * session active within `sessionIdleMs` is leased to it), start-or-resume create with `sign`,
 * `leased` and `other_sessions` in the answers.
 *
 * Like the server, it chooses each new upload's part digest: `chooseAlgorithm(asked)` (default:
 * what the client asked) names "SHA256", "CRC32C", "MD5" or "" from the client's preference;
 * a create whose chosen digest is not the asked one signs nothing. Every signed checksum must
 * have the digest's shape, every PUT carry the signed one under the digest's header, equal to
 * its bytes' digest (S3's BadDigest otherwise), and every reported one equal the stored part's.
 * `integrityOf(algorithm)` names the upload's `integrity` (default: "store", or "none").
 */
export class FakePartwise {
  constructor({
    partSize = 16,
    urlExpiryMs = 900_000,
    signBatchMax = 1000,
    reportBatchMax = 1000,
    sessionIdleMs = 30_000,
    chooseAlgorithm = (asked) => asked,
    integrityOf = (algorithm) => (algorithm ? "store" : "none"),
  } = {}) {
    this.chooseAlgorithm = chooseAlgorithm;
    this.integrityOf = integrityOf;
    this.partSize = partSize;
    this.urlExpiryMs = urlExpiryMs;
    this.limits = { sign_batch_max: signBatchMax, report_batch_max: reportBatchMax };
    this.sessionIdleMs = sessionIdleMs;
    this.clock = 1_000_000;
    this.uploads = new Map();
    this.calls = []; // every API call: { method, path, body }
    this.puts = []; // every part PUT attempt: { uploadId, number, size }
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.apiFaults = []; // { method, path (RegExp), answers: [status | "network" | Response-like] }
    this.putHook = null; // (put) => undefined | { status, body, etag } | "network" | Promise
    this.mismatching = []; // part numbers the next completion finds corrupted (mismatchOnce)
    this.violations = []; // part PUTs whose digest header was not the one signed
    this.fetch = this.fetch.bind(this);
    this.putPart = this.putPart.bind(this);
  }

  now = () => this.clock;

  options(extra = {}) {
    return {
      fetch: this.fetch,
      putPart: this.putPart,
      now: this.now,
      csrfToken: "token-123",
      retryDelays: [100, 200, 400],
      sleep: async (ms) => {
        this.sleeps.push(ms);
        await tick();
      },
      random: () => 0.5,
      ...extra,
    };
  }

  sleeps = [];

  seed(file, { id = randomUUID(), fingerprint, uploaded = [], bytes, partSize = this.partSize, checksumAlgorithm = "SHA256" } = {}) {
    const partCount = Math.max(1, Math.ceil(file.size / partSize));
    const record = {
      id,
      status: "uploading",
      filename: file.name,
      size: file.size,
      content_type: file.type,
      key: `uploads/${id}/${file.name}`,
      part_size: partSize,
      part_count: partCount,
      checksum_algorithm: checksumAlgorithm,
      integrity: this.integrityOf(checksumAlgorithm),
      fingerprint,
      client_token: null,
      parts: new Map(),
      s3: new Map(),
      sessions: new Map(), // session -> last time it signed or reported
      leases: new Map(), // part number -> session that signed it
      created_at: new Date(this.clock).toISOString(),
    };
    for (const number of uploaded) {
      const slice = bytes.subarray((number - 1) * partSize, Math.min(number * partSize, file.size));
      const checksum = checksumAlgorithm ? DIGESTS[checksumAlgorithm](slice) : "";
      record.s3.set(number, { bytes: slice, etag: `etag-${number}`, checksum });
      record.parts.set(number, { number, size: slice.length, etag: `etag-${number}`, checksum });
    }
    this.uploads.set(id, record);
    return record;
  }

  /** Sessions active on `record` now, other than `session`. */
  otherSessions(record, session) {
    let others = 0;
    for (const [name, seen] of record.sessions) {
      if (name !== session && this.clock - seen <= this.sessionIdleMs) others++;
    }
    return others;
  }

  touch(record, session) {
    if (session) record.sessions.set(session, this.clock);
  }

  /** The session holding a lease on part `number` of `record`, if it is another live one. */
  leasedToOther(record, number, session) {
    const holder = record.leases.get(number);
    if (!holder || holder === session || record.s3.has(number)) return false;
    return this.clock - (record.sessions.get(holder) ?? -Infinity) <= this.sessionIdleMs;
  }

  reconcile(record) {
    for (const [number, stored] of record.s3) {
      const known = record.parts.get(number) ?? { number, size: stored.bytes.length, checksum: stored.checksum };
      record.parts.set(number, { ...known, etag: stored.etag });
    }
  }

  /** Sign `parts` for `session`: those leased to another live session are left out. */
  signParts(record, parts, session) {
    const signed = [];
    const leased = [];
    for (const { number, checksum } of parts) {
      if (session && this.leasedToOther(record, number, session)) {
        leased.push(number);
        continue;
      }
      if (session) record.leases.set(number, session);
      record.parts.set(number, { ...(record.parts.get(number) ?? { number, etag: "" }), checksum, size: this.sizeOf(record, number) });
      const expires = this.clock + this.urlExpiryMs;
      signed.push({
        number,
        url: `https://s3.test/${record.id}/${number}?expires=${expires}`,
        method: "PUT",
        headers: checksum && record.checksum_algorithm ? { [DIGEST_HEADERS[record.checksum_algorithm]]: checksum } : {},
        size: this.sizeOf(record, number),
        expires_at: new Date(expires).toISOString(),
      });
    }
    return { signed, leased };
  }

  serialize(record, withParts = false) {
    const uploaded = [...record.parts.values()].filter((part) => part.etag);
    const body = {
      id: record.id,
      status: record.status,
      filename: record.filename,
      size: record.size,
      content_type: record.content_type,
      key: record.key,
      part_size: record.part_size,
      part_count: record.part_count,
      checksum_algorithm: record.checksum_algorithm,
      integrity: record.integrity,
      unverified: record.integrity === "none",
      fingerprint: record.fingerprint,
      bytes_uploaded: uploaded.reduce((sum, part) => sum + part.size, 0),
      parts_uploaded: uploaded.length,
      created_at: record.created_at,
      updated_at: new Date(this.clock).toISOString(),
      expires_at: new Date(this.clock + 7 * 86_400_000).toISOString(),
      completed_at: record.object ? new Date(this.clock).toISOString() : null,
      failure_reason: "",
      etag: record.object ? "object-etag" : "",
      checksum: record.object ? sha256(record.object) : "",
      limits: { ...this.limits, url_expires_in: this.urlExpiryMs / 1000, session_idle: this.sessionIdleMs / 1000 },
    };
    if (withParts) {
      body.parts = [...record.parts.values()].sort((a, b) => a.number - b.number);
    }
    return body;
  }

  async fetch(url, init = {}) {
    const parsed = new URL(url, "http://partwise.test");
    const method = init.method ?? "GET";
    const body = init.body ? JSON.parse(init.body) : undefined;
    const path = parsed.pathname;
    this.calls.push({ method, path, body, query: Object.fromEntries(parsed.searchParams), headers: init.headers });
    for (const fault of this.apiFaults) {
      if (fault.method === method && fault.path.test(path) && fault.answers.length) {
        const answer = fault.answers.shift();
        if (answer === "network") throw new TypeError("fetch failed");
        if (typeof answer === "object") return json(answer.status, answer.body);
        return json(answer, { code: `fault_${answer}`, detail: `Fault ${answer}.` });
      }
    }
    if (method !== "GET" && init.headers?.["X-CSRFToken"] !== "token-123") {
      return json(403, { code: "csrf_failed", detail: "CSRF Failed." });
    }
    const match = path.match(/^\/api\/uploads\/(?:([0-9a-f-]+)\/(?:(sign|parts|complete)\/)?)?$/);
    if (!match) return json(404, { code: "not_found", detail: "Not found." });
    const [, id, action] = match;
    if (!id && method === "GET") {
      const results = [...this.uploads.values()]
        .filter((record) => !parsed.searchParams.get("status") || record.status === parsed.searchParams.get("status"))
        .filter((record) => !parsed.searchParams.has("fingerprint") || record.fingerprint === parsed.searchParams.get("fingerprint"))
        .reverse()
        .map((record) => this.serialize(record));
      return json(200, { next: null, previous: null, results });
    }
    if (!id && method === "POST") return this.create(body);
    const record = this.uploads.get(id);
    if (!record) return json(404, { code: "not_found", detail: "Not found." });
    if (!action && method === "GET") {
      // Like upload_status: the detail is reconciled with what S3 holds, reported or not.
      this.reconcile(record);
      const session = parsed.searchParams.get("session");
      return json(200, { ...this.serialize(record, true), other_sessions: this.otherSessions(record, session) });
    }
    if (!action && method === "DELETE") {
      if (record.status === "completed") return json(409, { code: "upload_conflict", detail: "Completed." });
      record.status = "aborted";
      record.s3.clear();
      return json(200, this.serialize(record));
    }
    if (record.status !== "uploading") {
      return json(409, { code: "upload_conflict", detail: `The upload is ${record.status}.` });
    }
    if (action === "sign") {
      if (body.parts.length > this.limits.sign_batch_max) return json(400, { code: "invalid_input", detail: "Too many parts." });
      if (this.lacksChecksums(record, body.parts)) return json(400, { code: "checksum_required", detail: "Send each part's checksum." });
      if (this.misshapen(record, body.parts)) return json(400, { code: "invalid", detail: `Not ${record.checksum_algorithm} checksums.` });
      const { signed, leased } = this.signParts(record, body.parts, body.session);
      this.touch(record, body.session);
      return json(200, { parts: signed, leased, other_sessions: this.otherSessions(record, body.session) });
    }
    if (action === "parts") {
      if (body.parts.length > this.limits.report_batch_max) return json(400, { code: "invalid_input", detail: "Too many parts." });
      for (const part of body.parts) {
        const stored = record.s3.get(part.number);
        if (part.checksum && record.checksum_algorithm && stored && part.checksum !== DIGESTS[record.checksum_algorithm](stored.bytes)) {
          return json(400, { code: "invalid", detail: `Part ${part.number}'s checksum is not its ${record.checksum_algorithm}.` });
        }
      }
      for (const part of body.parts) {
        record.parts.set(part.number, { ...record.parts.get(part.number), number: part.number, etag: part.etag });
      }
      this.touch(record, body.session);
      return json(200, { ...this.serialize(record), other_sessions: this.otherSessions(record, body.session) });
    }
    if (action === "complete") {
      const missing = [];
      for (let number = 1; number <= record.part_count; number++) {
        if (!record.s3.has(number)) missing.push(number);
      }
      if (missing.length) {
        return json(409, { code: "part_missing", detail: "Parts are missing.", missing_parts: missing });
      }
      // As if these parts' bytes were corrupted on the way: their ETag is not the signed MD5.
      for (const number of this.mismatching.splice(0)) record.s3.get(number).corrupted = true;
      const corrupted = [...record.s3].filter(([, stored]) => stored.corrupted).map(([number]) => number);
      if (corrupted.length) {
        return json(409, { code: "part_mismatch", detail: "Parts do not match their checksums.", parts: corrupted.sort((a, b) => a - b) });
      }
      const chunks = [];
      for (let number = 1; number <= record.part_count; number++) chunks.push(record.s3.get(number).bytes);
      record.object = Buffer.concat(chunks);
      record.status = "completed";
      return json(200, this.serialize(record, true));
    }
    return json(405, { code: "method_not_allowed", detail: "No." });
  }

  create(body) {
    const asked = body.checksum_algorithm ?? "";
    const answer = (status, record, resumed) => {
      this.reconcile(record);
      const extra = {};
      if (body.resume) extra.resumed = resumed;
      // The server signs nothing for parts hashed with another digest than the upload's.
      if (body.sign && record.checksum_algorithm === asked) {
        if (this.lacksChecksums(record, body.sign.parts)) return json(400, { code: "checksum_required", detail: "Send each part's checksum." });
        if (this.misshapen(record, body.sign.parts)) return json(400, { code: "invalid", detail: `Not ${record.checksum_algorithm} checksums.` });
        const wanted = body.sign.parts.filter(({ number }) => !record.s3.has(number));
        const { signed, leased } = this.signParts(record, wanted, body.session);
        Object.assign(extra, { signed, leased });
      }
      this.touch(record, body.session);
      extra.other_sessions = this.otherSessions(record, body.session);
      return json(status, { ...this.serialize(record, true), ...extra });
    };
    for (const record of this.uploads.values()) {
      if (body.client_token && record.client_token === body.client_token) return answer(200, record, false);
    }
    if (body.resume) {
      const candidates = [...this.uploads.values()].reverse().filter(
        (record) =>
          record.status === "uploading" &&
          record.fingerprint === body.fingerprint &&
          record.size === body.size &&
          record.filename === body.filename,
      );
      if (candidates.length) return answer(200, candidates[0], true);
    }
    const partSize = body.part_size ?? this.partSize;
    const file = { name: body.filename, size: body.size, type: body.content_type ?? "" };
    const checksumAlgorithm = this.chooseAlgorithm(asked);
    const record = this.seed(file, { fingerprint: body.fingerprint, partSize, checksumAlgorithm });
    record.client_token = body.client_token;
    return answer(201, record, false);
  }

  /** Like check_parts_to_sign: an upload that verifies parts needs each part's checksum. */
  lacksChecksums(record, parts) {
    return Boolean(record.checksum_algorithm) && parts.some((part) => !part.checksum);
  }

  /** Whether a part's checksum is not of the upload's digest (its base64 length). */
  misshapen(record, parts) {
    const length = CHECKSUM_LENGTHS[record.checksum_algorithm];
    return Boolean(length) && parts.some((part) => part.checksum && part.checksum.length !== length);
  }

  /** The next completion answers 409 part_mismatch for `numbers` (until they are sent again). */
  mismatchOnce(numbers) {
    this.mismatching.push(...numbers);
  }

  sizeOf(record, number) {
    return Math.min(record.part_size, record.size - (number - 1) * record.part_size);
  }

  async putPart({ url, method, headers, body, signal, onProgress }) {
    assert.equal(method, "PUT");
    const [, id, number, expires] = url.match(/^https:\/\/s3\.test\/([^/]+)\/(\d+)\?expires=(\d+)$/);
    const size = body.byteLength ?? body.size;
    const put = { uploadId: id, number: Number(number), size, signal, headers, body };
    this.puts.push(put);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await tick();
      if (signal.aborted) throw signal.reason;
      let answer = this.putHook?.(put);
      if (answer instanceof Promise) {
        answer = await Promise.race([
          answer,
          new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true })),
        ]);
      }
      if (answer === "network") throw new TypeError("network error");
      if (answer) return answer;
      onProgress?.(Math.floor(size / 2));
      const record = this.uploads.get(id);
      // A watchedFile's slice carries the real one: S3 reading it is not the client reading.
      const bytes = body.byteLength === undefined ? new Uint8Array(await (body.untracked ?? body).arrayBuffer()) : new Uint8Array(body.slice(0));
      if (this.clock > Number(expires)) {
        return { status: 403, etag: null, body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" };
      }
      if (!record || record.status !== "uploading") {
        return { status: 404, etag: null, body: "<Error><Code>NoSuchUpload</Code></Error>" };
      }
      if (bytes.length !== this.sizeOf(record, Number(number))) {
        return { status: 403, etag: null, body: "<Error><Code>SignatureDoesNotMatch</Code></Error>" };
      }
      const algorithm = record.checksum_algorithm;
      if (algorithm) {
        // The signed checksum, under its digest's header (a store verifies that one), and no
        // other: anything else is not the request that was signed.
        const signed = record.parts.get(Number(number))?.checksum;
        const header = DIGEST_HEADERS[algorithm];
        const others = Object.values(DIGEST_HEADERS).filter((name) => name !== header && headers[name] !== undefined);
        if (headers[header] !== signed || others.length) {
          this.violations.push(`part ${number} of a ${algorithm} upload sent ${JSON.stringify(headers)}, signed ${header}: ${signed}`);
          return { status: 403, etag: null, body: "<Error><Code>SignatureDoesNotMatch</Code></Error>" };
        }
        if (DIGESTS[algorithm](bytes) !== headers[header]) {
          return { status: 400, etag: null, body: "<Error><Code>BadDigest</Code></Error>" };
        }
      }
      onProgress?.(size);
      const etag = createHash("md5").update(bytes).digest("hex");
      record.s3.set(Number(number), { bytes, etag, checksum: algorithm ? DIGESTS[algorithm](bytes) : "" });
      return { status: 200, etag: `"${etag}"`, body: "" };
    } finally {
      this.inFlight--;
    }
  }

  callsTo(action) {
    return this.calls.filter(({ method, path }) =>
      action === "create" ? method === "POST" && path === "/api/uploads/" : path.endsWith(`/${action}/`),
    );
  }
}

/**
 * A File whose slices are read through `read(blob)`; the part transport sends the real slice
 * (`untracked`), so only the client's own reads (fingerprint, hashing) go through `read`.
 */
export function watchedFile(file, read) {
  return {
    name: file.name,
    size: file.size,
    type: file.type,
    lastModified: file.lastModified,
    slice(start, end) {
      const blob = file.slice(start, end);
      return { size: blob.size, arrayBuffer: () => read(blob), untracked: blob };
    },
  };
}
