// Unit tests of client.js against a fake Partwise API and a fake S3 part transport.
// The fake (FakePartwise) keeps the real contract: snake_case JSON, server-chosen part sizes,
// presigned URLs that expire, and an "S3" that refuses a part whose size or SHA-256 differs
// from the signed one, like SeaweedFS does. Run with `node --test` in frontend/.
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { describe, test } from "node:test";

import {
  DEFAULT_OPTIONS,
  ETAG_HELP,
  UploadError,
  abortUpload,
  backoffDelay,
  camelize,
  fileFingerprint,
  listUnfinishedUploads,
  upload,
} from "./client.js";

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("base64");

function bytesOf(size, seed = 1) {
  const bytes = new Uint8Array(size);
  let state = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

function makeFile(size, { name = "data.bin", seed = 1, lastModified = 1700000000000, bytes } = {}) {
  return new File([bytes ?? bytesOf(size, seed)], name, { lastModified, type: "application/octet-stream" });
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// Waits by wall-clock time, not by a count of turns: WebCrypto digests run on libuv's thread
// pool, so on a loaded machine they can take many more event-loop turns than usual.
async function until(predicate, what = "condition", timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (predicate()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}

const json = (status, body) =>
  new Response(body === undefined ? "" : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });

/** An in-memory Partwise server plus S3, reachable through `fetch` and `putPart`. */
class FakePartwise {
  constructor({ partSize = 16, urlExpiryMs = 900_000 } = {}) {
    this.partSize = partSize;
    this.urlExpiryMs = urlExpiryMs;
    this.clock = 1_000_000;
    this.uploads = new Map();
    this.calls = []; // every API call: { method, path, body }
    this.puts = []; // every part PUT attempt: { uploadId, number, size }
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.apiFaults = []; // { method, path (RegExp), answers: [status | "network" | Response-like] }
    this.putHook = null; // (put) => undefined | { status, body, etag } | "network" | Promise
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

  seed(file, { id = randomUUID(), fingerprint, uploaded = [], bytes, partSize = this.partSize } = {}) {
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
      checksum_algorithm: "SHA256",
      fingerprint,
      client_token: null,
      parts: new Map(),
      s3: new Map(),
      created_at: new Date(this.clock).toISOString(),
    };
    for (const number of uploaded) {
      const slice = bytes.subarray((number - 1) * partSize, Math.min(number * partSize, file.size));
      const checksum = sha256(slice);
      record.s3.set(number, { bytes: slice, etag: `etag-${number}`, checksum });
      record.parts.set(number, { number, size: slice.length, etag: `etag-${number}`, checksum });
    }
    this.uploads.set(id, record);
    return record;
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
      fingerprint: record.fingerprint,
      bytes_uploaded: uploaded.reduce((sum, part) => sum + part.size, 0),
      parts_uploaded: uploaded.length,
      created_at: record.created_at,
      etag: record.object ? "object-etag" : "",
      checksum: record.object ? sha256(record.object) : "",
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
      for (const [number, stored] of record.s3) {
        const known = record.parts.get(number) ?? { number, size: stored.bytes.length, checksum: stored.checksum };
        record.parts.set(number, { ...known, etag: stored.etag });
      }
      return json(200, this.serialize(record, true));
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
      return json(200, {
        parts: body.parts.map(({ number, checksum }) => {
          record.parts.set(number, { ...(record.parts.get(number) ?? { number, etag: "" }), checksum, size: this.sizeOf(record, number) });
          const expires = this.clock + this.urlExpiryMs;
          return {
            number,
            url: `https://s3.test/${record.id}/${number}?expires=${expires}`,
            method: "PUT",
            headers: { "x-amz-checksum-sha256": checksum },
            size: this.sizeOf(record, number),
            expires_at: new Date(expires).toISOString(),
          };
        }),
      });
    }
    if (action === "parts") {
      for (const part of body.parts) {
        record.parts.set(part.number, { ...record.parts.get(part.number), number: part.number, etag: part.etag });
      }
      return json(200, this.serialize(record));
    }
    if (action === "complete") {
      const missing = [];
      for (let number = 1; number <= record.part_count; number++) {
        if (!record.s3.has(number)) missing.push(number);
      }
      if (missing.length) {
        return json(409, { code: "part_missing", detail: "Parts are missing.", missing_parts: missing });
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
    for (const record of this.uploads.values()) {
      if (body.client_token && record.client_token === body.client_token) return json(200, this.serialize(record, true));
    }
    const partSize = body.part_size ?? this.partSize;
    const file = { name: body.filename, size: body.size, type: body.content_type ?? "" };
    const record = this.seed(file, { fingerprint: body.fingerprint, partSize });
    record.client_token = body.client_token;
    return json(201, this.serialize(record, true));
  }

  sizeOf(record, number) {
    return Math.min(record.part_size, record.size - (number - 1) * record.part_size);
  }

  async putPart({ url, method, headers, body, signal, onProgress }) {
    assert.equal(method, "PUT");
    const [, id, number, expires] = url.match(/^https:\/\/s3\.test\/([^/]+)\/(\d+)\?expires=(\d+)$/);
    const put = { uploadId: id, number: Number(number), size: body.size, signal, headers };
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
      onProgress?.(Math.floor(body.size / 2));
      const record = this.uploads.get(id);
      // A watchedFile's slice carries the real one: S3 reading it is not the client reading.
      const bytes = new Uint8Array(await (body.untracked ?? body).arrayBuffer());
      if (this.clock > Number(expires)) {
        return { status: 403, etag: null, body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" };
      }
      if (!record || record.status !== "uploading") {
        return { status: 404, etag: null, body: "<Error><Code>NoSuchUpload</Code></Error>" };
      }
      if (bytes.length !== this.sizeOf(record, Number(number))) {
        return { status: 403, etag: null, body: "<Error><Code>SignatureDoesNotMatch</Code></Error>" };
      }
      if (sha256(bytes) !== headers["x-amz-checksum-sha256"]) {
        return { status: 400, etag: null, body: "<Error><Code>BadDigest</Code></Error>" };
      }
      onProgress?.(body.size);
      const etag = createHash("md5").update(bytes).digest("hex");
      record.s3.set(Number(number), { bytes, etag, checksum: sha256(bytes) });
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
function watchedFile(file, read) {
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

describe("a fresh upload", () => {
  test("sends every part, signs in batches with each part's SHA-256, and completes", async () => {
    const server = new FakePartwise({ partSize: 16 });
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const handle = upload(file, server.options({ signBatchSize: 3, concurrency: 2 }));
    const completed = await handle.promise;

    assert.equal(completed.status, "completed");
    assert.equal(completed.partCount, 7);
    assert.equal(completed.checksum, sha256(bytes), "the object holds the file's bytes");
    const signCalls = server.callsTo("sign").map((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(signCalls.flat(), [1, 2, 3, 4, 5, 6, 7], "each part is signed once, in order");
    assert.ok(signCalls.every((numbers) => numbers.length <= 3), `at most signBatchSize: ${signCalls}`);
    for (const call of server.callsTo("sign")) {
      for (const part of call.body.parts) {
        const slice = bytes.subarray((part.number - 1) * 16, part.number * 16);
        assert.equal(part.checksum, sha256(slice), `part ${part.number} carries its SHA-256`);
      }
    }
    const create = server.callsTo("create")[0].body;
    assert.equal(create.checksum_algorithm, "SHA256");
    assert.equal(create.size, 100);
    assert.match(create.fingerprint, /^v1:[0-9a-f]{64}$/);
    assert.match(create.client_token, /^pw-[A-Za-z0-9-]+$/);
    const reported = server.callsTo("parts").flatMap((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(reported.sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(server.callsTo("complete").length, 1);
    assert.equal(server.puts.length, 7, "each part is sent once");
    assert.equal(handle.state, "completed");
  });

  test("sends the CSRF token from the csrftoken cookie on every unsafe call", async () => {
    const server = new FakePartwise();
    globalThis.document = { cookie: "other=1; csrftoken=token-123" };
    try {
      const options = server.options();
      delete options.csrfToken;
      await upload(makeFile(20), options).promise;
    } finally {
      delete globalThis.document;
    }
    for (const call of server.calls.filter((call) => call.method !== "GET")) {
      assert.equal(call.headers["X-CSRFToken"], "token-123");
    }
  });

  test("uploads a 0-byte file as one empty part", async () => {
    const server = new FakePartwise();
    const completed = await upload(makeFile(0, { name: "empty.txt" }), server.options()).promise;
    assert.equal(completed.status, "completed");
    assert.deepEqual(server.puts.map((put) => put.size), [0]);
    assert.equal(completed.checksum, sha256(new Uint8Array()));
  });

  test("uses the part size the server chose, and passes the partSize option on", async () => {
    const server = new FakePartwise({ partSize: 16 });
    const completed = await upload(makeFile(100), server.options({ partSize: 40 })).promise;
    assert.equal(server.callsTo("create")[0].body.part_size, 40);
    assert.deepEqual(server.puts.map((put) => put.size).sort(), [20, 40, 40]);
    assert.equal(completed.partCount, 3);
  });

  test("camelizes what it hands out and keeps DEFAULT_OPTIONS as documented", () => {
    assert.deepEqual(camelize({ part_count: 1, parts: [{ missing_parts: [2] }] }), {
      partCount: 1,
      parts: [{ missingParts: [2] }],
    });
    assert.equal(DEFAULT_OPTIONS.concurrency, 4);
    assert.ok(Object.isFrozen(DEFAULT_OPTIONS));
  });
});

describe("concurrency and memory", () => {
  test("never has more than `concurrency` parts in flight, and uses all of them", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const gates = [];
    server.putHook = () => {
      const gate = deferred();
      gates.push(gate);
      return gate.promise.then(() => undefined);
    };
    const handle = upload(makeFile(200), server.options({ concurrency: 3, signBatchSize: 5 }));
    while (handle.state !== "completed" && handle.state !== "failed") {
      await until(() => gates.length || handle.state === "completed" || handle.state === "failed", "a PUT");
      await tick();
      assert.ok(server.inFlight <= 3, `in flight: ${server.inFlight}`);
      gates.splice(0).forEach((gate) => gate.resolve());
      await tick();
    }
    await handle.promise;
    assert.equal(server.maxInFlight, 3);
  });

  test("reads at most `concurrency` parts into memory at once", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(300);
    let reads = 0;
    let reading = 0;
    let maxReading = 0;
    let heldBytes = 0;
    let maxHeldBytes = 0;
    // Count the bytes read into memory by arrayBuffer().
    const tracked = watchedFile(file, async (blob) => {
      // The first two reads are the fingerprint's (at most 1 MiB each, one at a time).
      if (++reads <= 2) return blob.arrayBuffer();
      reading++;
      heldBytes += blob.size;
      maxReading = Math.max(maxReading, reading);
      maxHeldBytes = Math.max(maxHeldBytes, heldBytes);
      await tick();
      const buffer = await blob.arrayBuffer();
      reading--;
      heldBytes -= blob.size;
      return buffer;
    });
    const options = server.options({ concurrency: 2, signBatchSize: 10 });
    await upload(tracked, options).promise;
    assert.ok(maxReading <= 2, `parts read at once: ${maxReading}`);
    assert.ok(maxHeldBytes <= 2 * 10, `bytes held at once: ${maxHeldBytes}`);
    assert.equal(maxReading, 2, "hashing does use the allowed parallelism");
  });
});

describe("batching", () => {
  test("a sign call takes every part hashed ahead, so batches grow as the hashing gets ahead", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(200);
    let reads = 0;
    const counted = watchedFile(file, (blob) => (reads++, blob.arrayBuffer()));
    const gate = deferred();
    server.putHook = (put) => (put.number <= 2 ? gate.promise.then(() => undefined) : undefined);
    const options = server.options({ concurrency: 2 });
    const putPart = options.putPart;
    options.putPart = (request) => {
      server.clock += 100; // a measurable speed once parts move
      return putPart(request);
    };
    const handle = upload(counted, options);
    // Parts 1 and 2 are held while the pipeline hashes the whole file (2 fingerprint reads).
    await until(() => reads === 2 + 20, "every part read for hashing");
    await new Promise((resolve) => setTimeout(resolve, 50)); // and its digest computed
    gate.resolve();
    await handle.promise;
    const signCalls = server.callsTo("sign").map((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(signCalls.flat(), Array.from({ length: 20 }, (_, i) => i + 1));
    // Before any speed is known only `concurrency` parts are signed at a time; then one call
    // takes every part already hashed.
    assert.deepEqual(signCalls.slice(0, 2), [[1, 2], [3, 4]]);
    assert.equal(signCalls.length, 3, `sign calls: ${JSON.stringify(signCalls)}`);
    assert.equal(reads, 2 + 20, "each part is read once for hashing");
  });

  test("never signs more parts ahead than the measured speed sends in half a URL's lifetime", async () => {
    const server = new FakePartwise({ partSize: 10 });
    server.urlExpiryMs = 180_000; // 3 min: (180 s - 60 s margin) / 2 = 60 s of parts ahead
    const options = server.options({ concurrency: 1, speedWindow: 10_000 });
    options.putPart = async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 2)); // so that hashing gets ahead
      server.clock += 1000; // 10 bytes per second: one 10-byte part per second
      return server.putPart(request);
    };
    await upload(makeFile(2000), options).promise; // 200 parts
    const sizes = server.callsTo("sign").map((call) => call.body.parts.length);
    assert.equal(sizes.reduce((a, b) => a + b, 0), 200, "no part was signed twice (none expired)");
    assert.ok(sizes.every((size) => size <= 60), `parts per sign call: ${sizes}`);
    assert.ok(sizes.filter((size) => size === 60).length >= 2, `the cap is what limits: ${sizes}`);
  });

  test("reports ETags in batches of reportBatchSize, and every one of them before completing", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const options = server.options({ concurrency: 2, reportBatchSize: 4, reportInterval: 60_000 });
    await upload(makeFile(100), options).promise;
    const reports = server.callsTo("parts").map((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(reports.flat().sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(reports.slice(0, -1).every((numbers) => numbers.length >= 4), `reports: ${JSON.stringify(reports)}`);
    assert.ok(reports.length <= 3, `reports: ${JSON.stringify(reports)}`);
    const order = server.calls.map((call) => call.path.split("/").at(-2));
    assert.ok(order.lastIndexOf("parts") < order.indexOf("complete"), "all reports come before complete");
  });

  test("reports what has waited reportInterval ms even when no more parts finish", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const gate = deferred();
    server.putHook = (put) => (put.number === 3 ? gate.promise.then(() => undefined) : undefined);
    const options = server.options({ concurrency: 1, reportBatchSize: 100, reportInterval: 20 });
    const handle = upload(makeFile(30), options);
    // Part 3 is held: parts 1 and 2 are reported by the timer, not by the batch size.
    await until(() => server.callsTo("parts").length === 1, "a report on the timer");
    assert.deepEqual(server.callsTo("parts")[0].body.parts.map((part) => part.number), [1, 2]);
    gate.resolve();
    await handle.promise;
    assert.deepEqual(server.callsTo("parts").at(-1).body.parts.map((part) => part.number), [3]);
  });
});

describe("retry policy", () => {
  const retried = [
    ["network error", "network"],
    ["500", { status: 500, etag: null, body: "<Error><Code>InternalError</Code></Error>" }],
    ["503 SlowDown", { status: 503, etag: null, body: "<Error><Code>SlowDown</Code></Error>" }],
  ];
  for (const [id, answer] of retried) {
    test(`retries a part after a ${id}, with exponential backoff and jitter`, async () => {
      const server = new FakePartwise();
      let failures = 2;
      server.putHook = (put) => (put.number === 1 && failures-- > 0 ? answer : undefined);
      const retries = [];
      const options = server.options({ retryDelays: [100, 200, 400], random: () => 0.5 });
      options.onRetry = (retry) => retries.push(retry);
      const completed = await upload(makeFile(40), options).promise;
      assert.equal(completed.status, "completed");
      assert.deepEqual(server.sleeps, [75, 150], "half of the delay plus jitter, doubling");
      assert.deepEqual(retries.map((retry) => [retry.number, retry.attempt]), [[1, 1], [1, 2]]);
    });
  }

  test("asks again when the server is still completing the upload (409 completing)", async () => {
    const server = new FakePartwise();
    const completing = { code: "upload_conflict", detail: "The upload is being completed; ask again shortly.", status: "completing" };
    // The first answer is lost; the retry finds our own completion still running, twice.
    server.apiFaults.push({
      method: "POST",
      path: /\/complete\/$/,
      answers: ["network", { status: 409, body: completing }, { status: 409, body: completing }],
    });
    const completed = await upload(makeFile(40), server.options({ retryDelays: [10, 20, 40, 80] })).promise;
    assert.equal(completed.status, "completed");
    assert.equal(server.sleeps.length, 3);
  });

  test("does not ask again after any other 409 of the completion", async () => {
    const server = new FakePartwise();
    const conflict = { code: "upload_conflict", detail: "The upload is aborted.", status: "aborted" };
    server.apiFaults.push({ method: "POST", path: /\/complete\/$/, answers: [{ status: 409, body: conflict }] });
    const handle = upload(makeFile(40), server.options());
    await assert.rejects(handle.promise, (error) => error.code === "upload_conflict" && error.status === 409);
    assert.deepEqual(server.sleeps, []);
  });

  const final = [
    ["400 BadDigest", { status: 400, etag: null, body: "<Error><Code>BadDigest</Code></Error>" }, "checksum_mismatch"],
    ["403 SignatureDoesNotMatch", { status: 403, etag: null, body: "<Error><Code>SignatureDoesNotMatch</Code></Error>" }, "part_refused"],
    ["404 NoSuchUpload", { status: 404, etag: null, body: "<Error><Code>NoSuchUpload</Code></Error>" }, "upload_gone"],
  ];
  for (const [id, answer, code] of final) {
    test(`never retries a part refused with ${id}`, async () => {
      const server = new FakePartwise();
      server.putHook = (put) => (put.number === 1 ? answer : undefined);
      const errors = [];
      const options = server.options();
      options.onError = (error) => errors.push(error);
      const handle = upload(makeFile(40), options);
      await assert.rejects(handle.promise, (error) => error instanceof UploadError && error.code === code);
      assert.equal(server.puts.filter((put) => put.number === 1).length, 1);
      assert.deepEqual(server.sleeps, []);
      assert.equal(handle.state, "failed");
      assert.equal(errors.length, 1);
      assert.equal(server.callsTo("complete").length, 0);
    });
  }

  test("gives up after the last retry delay", async () => {
    const server = new FakePartwise();
    server.putHook = () => "network";
    const handle = upload(makeFile(10), server.options({ retryDelays: [1, 2] }));
    await assert.rejects(handle.promise, { code: "network_error" });
    assert.equal(server.puts.length, 3);
  });

  test("retries API calls that fail with 5xx, 429 or a network error, not other 4xx", async () => {
    const server = new FakePartwise();
    server.apiFaults.push({ method: "POST", path: /sign\/$/, answers: [503, "network", 429] });
    await upload(makeFile(40), server.options()).promise;
    assert.equal(server.callsTo("sign").length, 4);

    const refusing = new FakePartwise();
    refusing.apiFaults.push({ method: "POST", path: /sign\/$/, answers: [400] });
    await assert.rejects(upload(makeFile(40), refusing.options()).promise, { code: "fault_400", status: 400 });
    assert.equal(refusing.callsTo("sign").length, 1);
  });

  test("backoffDelay doubles and jitters between half and all of each delay", () => {
    assert.equal(backoffDelay([1000, 2000, 4000], 0, () => 0), 500);
    assert.equal(backoffDelay([1000, 2000, 4000], 1, () => 0.999999), 2000);
    assert.equal(backoffDelay([1000, 2000, 4000], 2, () => 0.5), 3000);
    assert.equal(backoffDelay([1000, 2000, 4000], 9, () => 0), 2000, "past the end: the last delay");
  });

  test("a missing ETag is an error that names the CORS fix, never retried", async () => {
    const server = new FakePartwise();
    server.putHook = () => ({ status: 200, etag: null, body: "" });
    await assert.rejects(upload(makeFile(10), server.options()).promise, (error) => {
      assert.equal(error.code, "etag_not_exposed");
      assert.equal(error.message, ETAG_HELP);
      assert.match(error.message, /ExposeHeaders/);
      return true;
    });
    assert.equal(server.puts.length, 1);
  });

  test("a part that stops moving is dropped and sent again", async () => {
    const server = new FakePartwise();
    let stalls = 1;
    server.putHook = (put) => (put.number === 1 && stalls-- > 0 ? new Promise(() => {}) : undefined);
    const completed = await upload(makeFile(30), server.options({ stallTimeout: 20 })).promise;
    assert.equal(completed.status, "completed");
    assert.equal(server.puts.filter((put) => put.number === 1).length, 2);
    assert.ok(server.puts[0].signal.aborted, "the stalled request was aborted");
  });
});

describe("expired URLs", () => {
  test("re-signs a part whose URL S3 says has expired, then sends it", async () => {
    const server = new FakePartwise({ urlExpiryMs: 900_000 });
    let expireOnce = true;
    server.putHook = (put) => {
      if (put.number === 2 && expireOnce) {
        expireOnce = false;
        return { status: 403, etag: null, body: "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>" };
      }
      return undefined;
    };
    const completed = await upload(makeFile(48), server.options({ signBatchSize: 10 })).promise;
    assert.equal(completed.status, "completed");
    const signCalls = server.callsTo("sign").map((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(signCalls, [[1, 2, 3], [2]], "only the expired part is signed again");
  });

  test("signs again before sending when a URL is about to expire", async () => {
    const server = new FakePartwise({ urlExpiryMs: 30_000 });
    const completed = await upload(makeFile(16), server.options()).promise;
    assert.equal(completed.status, "completed");
    assert.equal(server.callsTo("sign").length, 2, "a URL within the expiry margin is renewed");
  });
});

describe("pause, resume and cancel", () => {
  test("pause drops the parts in flight without an error; resume sends only what S3 lacks", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const bytes = bytesOf(100);
    const gates = new Map();
    server.putHook = (put) => {
      if (put.number <= 2) return undefined; // parts 1 and 2 go straight through
      const gate = deferred();
      gates.set(put.number, gate);
      return gate.promise;
    };
    const states = [];
    const errors = [];
    const options = server.options({ concurrency: 2, signBatchSize: 4 });
    options.onStateChange = (state) => states.push(state);
    options.onError = (error) => errors.push(error);
    const handle = upload(makeFile(100, { bytes }), options);
    await until(() => gates.size === 2, "parts 3 and 4 in flight");
    assert.equal(handle.pause(), true);
    await until(() => server.puts.filter((put) => put.number > 2).every((put) => put.signal.aborted), "aborts");
    assert.equal(handle.state, "paused");
    let settled = false;
    handle.promise.then(() => (settled = true), () => (settled = true));
    await tick();
    assert.equal(settled, false, "a paused upload is neither done nor failed");
    assert.deepEqual(errors, []);

    server.putHook = null;
    const putsBefore = server.puts.length;
    assert.equal(handle.resume(), true);
    const completed = await handle.promise;
    assert.equal(completed.checksum, sha256(bytes));
    const resent = server.puts.slice(putsBefore).map((put) => put.number).sort((a, b) => a - b);
    assert.deepEqual(resent, [3, 4, 5, 6, 7, 8, 9, 10], "parts 1 and 2 are not sent again");
    const detailCalls = server.calls.filter((call) => call.method === "GET" && /[0-9a-f]\/$/.test(call.path));
    assert.equal(detailCalls.length, 1, "resume asks the server what is left");
    assert.deepEqual(states, ["preparing", "uploading", "paused", "uploading", "completing", "completed"]);
  });

  test("pause reports the parts that finished but were not reported yet", async () => {
    const server = new FakePartwise({ partSize: 10 });
    server.putHook = (put) => (put.number <= 2 ? undefined : new Promise(() => {}));
    const options = server.options({ concurrency: 2, reportBatchSize: 100, reportInterval: 60_000 });
    const handle = upload(makeFile(100), options);
    await until(() => server.puts.length === 4, "parts 3 and 4 in flight");
    assert.equal(server.callsTo("parts").length, 0, "nothing reported yet: the batch is not full");
    handle.pause();
    await until(() => server.callsTo("parts").length === 1, "a report on pause");
    const reported = server.callsTo("parts")[0].body.parts.map((part) => part.number);
    assert.deepEqual(reported.sort((a, b) => a - b), [1, 2]);
    assert.equal(handle.state, "paused");
  });

  test("cancel aborts the upload on the server and never reports a failure", async () => {
    const server = new FakePartwise({ partSize: 10 });
    server.putHook = (put) => (put.number === 1 ? undefined : new Promise(() => {}));
    const errors = [];
    const options = server.options({ concurrency: 2 });
    options.onError = (error) => errors.push(error);
    const handle = upload(makeFile(50), options);
    await until(() => server.puts.length >= 3, "parts in flight");
    assert.equal(await handle.cancel(), true);
    await assert.rejects(handle.promise, { code: "cancelled" });
    assert.equal(handle.state, "cancelled");
    assert.deepEqual(errors, []);
    const record = [...server.uploads.values()][0];
    assert.equal(record.status, "aborted");
    assert.equal(server.calls.filter((call) => call.method === "DELETE").length, 1);
    const putsAfter = server.puts.length;
    await tick();
    assert.equal(server.puts.length, putsAfter, "nothing is sent after cancel");
    assert.equal(await handle.cancel(), false, "cancelling twice does nothing");
  });

  test("cancel while paused aborts on the server too", async () => {
    const server = new FakePartwise({ partSize: 10 });
    server.putHook = () => new Promise(() => {});
    const handle = upload(makeFile(50), server.options());
    await until(() => server.puts.length > 0, "a PUT");
    handle.pause();
    await handle.cancel();
    assert.equal([...server.uploads.values()][0].status, "aborted");
    await assert.rejects(handle.promise, { code: "cancelled" });
  });
});

describe("resuming from another session", () => {
  async function seededServer(bytes, file, uploaded) {
    const server = new FakePartwise({ partSize: 10 });
    const record = server.seed(file, { fingerprint: await fileFingerprint(file), uploaded, bytes });
    return { server, record };
  }

  test("finds the unfinished upload by fingerprint, proves one part, and sends only the rest", async () => {
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const { server, record } = await seededServer(bytes, file, [1, 2, 3, 4, 5, 6]);
    const resumed = [];
    const progress = [];
    const options = server.options({ random: () => 0.99 });
    options.onResume = (detail) => resumed.push(detail.id);
    options.onProgress = (p) => progress.push(p);
    const completed = await upload(file, options).promise;
    assert.equal(completed.id, record.id);
    assert.deepEqual(resumed, [record.id]);
    assert.equal(server.callsTo("create").length, 0, "no new upload");
    assert.deepEqual(server.puts.map((put) => put.number).sort((a, b) => a - b), [7, 8, 9, 10]);
    assert.equal(completed.checksum, sha256(bytes));
    const listCall = server.calls.find((call) => call.method === "GET" && call.path === "/api/uploads/");
    assert.equal(listCall.query.status, "uploading");
    assert.equal(listCall.query.fingerprint, record.fingerprint);
    assert.equal(progress[0].bytesUploaded, 60, "progress starts from what S3 already holds");
    assert.equal(progress.at(-1).bytesSent, 40, "only the missing bytes are sent");
  });

  test("a different file with the same name, size and fingerprint never resumes the old upload", async () => {
    const oldBytes = bytesOf(100, 1);
    const oldFile = makeFile(100, { bytes: oldBytes });
    const newFile = makeFile(100, { seed: 2 });
    const server = new FakePartwise({ partSize: 10 });
    // The worst case: the fingerprint matches (same ends, name, size, date) but the bytes do not.
    const old = server.seed(oldFile, { fingerprint: await fileFingerprint(newFile), uploaded: [3, 4], bytes: oldBytes });
    const mismatches = [];
    const options = server.options({ verifyParts: 1 });
    options.onMismatch = (detail) => mismatches.push(detail.id);
    const completed = await upload(newFile, options).promise;
    assert.notEqual(completed.id, old.id);
    assert.deepEqual(mismatches, [old.id]);
    assert.equal(server.callsTo("create").length, 1);
    assert.ok(server.puts.every((put) => put.uploadId === completed.id), "nothing is sent to the old upload");
    assert.equal(old.status, "uploading", "the old upload is left alone");
    assert.deepEqual([...old.s3.keys()], [3, 4]);
  });

  test("a failed 'what is left?' call is retried, never read as 'start again'", async () => {
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const { server, record } = await seededServer(bytes, file, [1, 2]);
    server.apiFaults.push({ method: "GET", path: /[0-9a-f]\/$/, answers: [502, "network"] });
    const completed = await upload(file, server.options()).promise;
    assert.equal(completed.id, record.id);
    assert.equal(server.callsTo("create").length, 0);

    const down = await seededServer(bytes, file, [1, 2]);
    down.server.apiFaults.push({ method: "GET", path: /^\/api\/uploads\/$/, answers: [503, 503, 503, 503] });
    await assert.rejects(upload(file, down.server.options()).promise, { code: "fault_503" });
    assert.equal(down.server.callsTo("create").length, 0, "an unanswered look-up never starts over");
  });

  test("resuming a chosen upload with another file is refused", async () => {
    const bytes = bytesOf(100);
    const { server, record } = await seededServer(bytes, makeFile(100, { bytes }), [1]);
    const other = makeFile(100, { seed: 3 });
    await assert.rejects(upload(other, server.options({ uploadId: record.id })).promise, { code: "file_mismatch" });
    assert.equal(server.puts.length, 0);
    assert.equal(record.status, "uploading");
  });

  test("resuming a chosen upload with its file sends the missing parts", async () => {
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const { server, record } = await seededServer(bytes, file, [1, 2, 3]);
    const completed = await upload(file, server.options({ uploadId: record.id, verifyParts: Infinity })).promise;
    assert.equal(completed.checksum, sha256(bytes));
    assert.equal(server.puts.length, 7);
  });

  test("lists unfinished uploads and aborts one", async () => {
    const bytes = bytesOf(30);
    const { server, record } = await seededServer(bytes, makeFile(30, { bytes }), [1]);
    const listed = await listUnfinishedUploads(server.options());
    assert.deepEqual(listed.map((item) => [item.id, item.partsUploaded, item.partCount]), [[record.id, 1, 3]]);
    const aborted = await abortUpload(record.id, server.options());
    assert.equal(aborted.status, "aborted");
    assert.deepEqual(await listUnfinishedUploads(server.options()), []);
  });
});

describe("completion", () => {
  test("sends again the parts the server says are missing, then completes", async () => {
    const server = new FakePartwise();
    let lose = true;
    const realFetch = server.fetch;
    server.fetch = async (url, init) => {
      if (lose && url.endsWith("/complete/")) {
        lose = false;
        [...server.uploads.values()][0].s3.delete(2); // S3 lost part 2
      }
      return realFetch(url, init);
    };
    const completed = await upload(makeFile(40), server.options()).promise;
    assert.equal(completed.status, "completed");
    assert.equal(server.callsTo("complete").length, 2);
    assert.equal(server.puts.filter((put) => put.number === 2).length, 2);
  });
});

describe("progress accounting", () => {
  test("reports bytes, parts, speed and ETA, and ends at the file size", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const events = [];
    const options = server.options({ concurrency: 1, speedWindow: 10_000 });
    options.putPart = async (request) => {
      server.clock += 1000; // each part takes one second
      return server.putPart(request);
    };
    options.onProgress = (progress) => events.push(progress);
    await upload(makeFile(40), options).promise;
    const last = events.at(-1);
    assert.equal(last.bytesUploaded, 40);
    assert.equal(last.bytesTotal, 40);
    assert.equal(last.partsUploaded, 4);
    assert.equal(last.partsTotal, 4);
    assert.equal(last.percent, 100);
    assert.equal(last.eta, 0);
    const mid = events.find((progress) => progress.state === "uploading" && progress.partsUploaded === 2);
    assert.equal(mid.bytesUploaded, 20);
    assert.ok(Math.abs(mid.speed - 10) < 0.01, `speed: ${mid.speed}`);
    assert.ok(Math.abs(mid.eta - 2) < 0.01, `eta: ${mid.eta}`);
    for (let i = 1; i < events.length; i++) {
      assert.ok(events[i].bytesUploaded >= events[i - 1].bytesUploaded, "never goes backwards without a failure");
    }
  });

  test("takes back the bytes of a part that failed half-way", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const events = [];
    let fail = true;
    const options = server.options({ concurrency: 1 });
    options.putPart = async (request) => {
      if (fail) {
        fail = false;
        request.onProgress(5);
        throw new TypeError("network error");
      }
      return server.putPart(request);
    };
    options.onProgress = (progress) => events.push(progress.bytesUploaded);
    await upload(makeFile(10), options).promise;
    assert.deepEqual(events.slice(0, 3), [0, 5, 0]);
    assert.equal(events.at(-1), 10);
  });
});
