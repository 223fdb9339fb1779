// Unit tests of client.js against a fake Partwise API and a fake S3 part transport.
// The fake (FakePartwise) keeps the real contract: snake_case JSON, server-chosen part sizes,
// presigned URLs that expire, and an "S3" that refuses a part whose size or SHA-256 differs
// from the signed one, like SeaweedFS does. Run with `node --test` in frontend/.
import assert from "node:assert/strict";
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

import {
  FakePartwise,
  bytesOf,
  deferred,
  makeFile,
  sha256,
  tick,
  until,
  watchedFile,
} from "./fake_partwise.js";

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

  test("holds at most (concurrency + lookahead) parts in memory at once", async () => {
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
    const options = server.options({ concurrency: 2, lookahead: 1, signBatchSize: 10, partSize: 10 });
    await upload(tracked, options).promise;
    assert.ok(maxReading <= 2 + 1, `parts read at once: ${maxReading}`);
    assert.ok(maxHeldBytes <= (2 + 1) * 10, `bytes held at once: ${maxHeldBytes}`);
    assert.ok(maxReading >= 2, "hashing does use the allowed parallelism");
  });

  test("with hashAhead 'buffer' and sendHashedBytes, each part is read once and PUT as the very bytes that were hashed", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(200);
    const read = new Map(); // ArrayBuffer -> size, every buffer the client read
    let held = 0;
    let maxHeld = 0;
    const tracked = watchedFile(file, async (blob) => {
      const buffer = await blob.arrayBuffer();
      read.set(buffer, blob.size);
      return buffer;
    });
    const options = server.options({ concurrency: 2, lookahead: 2, partSize: 10, hashAhead: "buffer", sendHashedBytes: true });
    const putPart = options.putPart;
    options.putPart = async (request) => {
      held = [...read.keys()].filter((buffer) => buffer.byteLength === 10).length;
      maxHeld = Math.max(maxHeld, held);
      const result = await putPart(request);
      return result;
    };
    await upload(tracked, options).promise;
    const partReads = [...read.values()].filter((size) => size === 10);
    assert.equal(partReads.length, 20, "each of the 20 parts is read exactly once");
    assert.ok(server.puts.every((put) => read.has(put.body)), "every PUT sends a buffer read for hashing");
    assert.equal(server.puts.length, 20);
  });

  test("by default every PUT sends a Blob slice of the file, which the browser streams (measured faster)", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(200);
    await upload(file, server.options({ partSize: 10 })).promise;
    assert.equal(server.puts.length, 20);
    assert.ok(server.puts.every((put) => put.body instanceof Blob), "every PUT body is a Blob");
  });
});

describe("batching", () => {
  test("create signs the first parts; then a sign call takes every part hashed ahead", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(200);
    let reads = 0;
    const counted = watchedFile(file, (blob) => (reads++, blob.arrayBuffer()));
    const gate = deferred();
    server.putHook = (put) => (put.number <= 2 ? gate.promise.then(() => undefined) : undefined);
    const options = server.options({ concurrency: 2, partSize: 10 });
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
    const create = server.callsTo("create")[0].body;
    assert.equal(create.resume, true);
    // Twice concurrency + lookahead (sending Blob slices, no bytes are kept for the PUT).
    const first = Array.from({ length: 12 }, (_, i) => i + 1);
    assert.deepEqual(create.sign.parts.map((part) => part.number), first, "create signs the first parts");
    const signCalls = server.callsTo("sign").map((call) => call.body.parts.map((part) => part.number));
    assert.deepEqual(signCalls.flat(), Array.from({ length: 8 }, (_, i) => i + 13), "each part signed once");
    // Before any speed is known at most the buffers' worth is signed at once; then one call
    // takes every part already hashed.
    assert.ok(signCalls.length <= 2, `sign calls: ${JSON.stringify(signCalls)}`);
    assert.ok(signCalls.at(-1).length >= 4, `the last call takes the rest: ${JSON.stringify(signCalls)}`);
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

  test("start-or-resume finds the unfinished upload by fingerprint, proves one part, and sends only the rest", async () => {
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
    assert.equal(server.uploads.size, 1, "no new upload");
    assert.deepEqual(server.puts.map((put) => put.number).sort((a, b) => a - b), [7, 8, 9, 10]);
    assert.equal(completed.checksum, sha256(bytes));
    // One call asks and answers "what is left?": no separate look-up.
    const creates = server.callsTo("create");
    assert.equal(creates.length, 1);
    assert.equal(creates[0].body.resume, true);
    assert.equal(creates[0].body.fingerprint, record.fingerprint);
    assert.equal(server.calls.filter((call) => call.method === "GET").length, 0, "no list, no detail call");
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
    assert.deepEqual(server.callsTo("create").map((call) => call.body.resume), [true, undefined], "asks, then creates");
    assert.equal(server.uploads.size, 2);
    assert.ok(server.puts.every((put) => put.uploadId === completed.id), "nothing is sent to the old upload");
    assert.equal(old.status, "uploading", "the old upload is left alone");
    assert.deepEqual([...old.s3.keys()], [3, 4]);
  });

  test("a failed start-or-resume call is retried, never read as 'start again'", async () => {
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const { server, record } = await seededServer(bytes, file, [1, 2]);
    server.apiFaults.push({ method: "POST", path: /^\/api\/uploads\/$/, answers: [502, "network"] });
    const completed = await upload(file, server.options()).promise;
    assert.equal(completed.id, record.id);
    assert.equal(server.uploads.size, 1);

    const down = await seededServer(bytes, file, [1, 2]);
    down.server.apiFaults.push({ method: "POST", path: /^\/api\/uploads\/$/, answers: [503, 503, 503, 503] });
    await assert.rejects(upload(file, down.server.options()).promise, { code: "fault_503" });
    assert.equal(down.server.uploads.size, 1, "an unanswered call never starts over");
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

  test("never takes back bytes: a part that failed half-way keeps the figure until it passes it", async () => {
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
    assert.deepEqual(events.slice(0, 3), [0, 5, 5]);
    for (let i = 1; i < events.length; i++) assert.ok(events[i] >= events[i - 1], `never backwards: ${events}`);
    assert.equal(events.at(-1), 10);
  });
});

describe("the server's limits", () => {
  test("sign batches stay within limits.sign_batch_max and reports within min(64, report_batch_max)", async () => {
    const server = new FakePartwise({ partSize: 10, signBatchMax: 3, reportBatchMax: 2 });
    const options = server.options({ concurrency: 2, partSize: 10, signBatchSize: 100, reportBatchSize: 1000 });
    const completed = await upload(makeFile(200), options).promise;
    assert.equal(completed.status, "completed");
    const signSizes = server.callsTo("sign").map((call) => call.body.parts.length);
    assert.ok(signSizes.every((size) => size <= 3), `sign batches: ${signSizes}`);
    // Before the first answer the limits are unknown: create signs 2 × (concurrency + lookahead).
    assert.ok(server.callsTo("create")[0].body.sign.parts.length <= 12);
    const reportSizes = server.callsTo("parts").map((call) => call.body.parts.length);
    assert.ok(reportSizes.every((size) => size <= 2), `report batches: ${reportSizes}`);
  });

  test("reports at most 64 parts at once even when the server takes more", async () => {
    const server = new FakePartwise({ partSize: 10, reportBatchMax: 1000 });
    const options = server.options({ partSize: 10, reportBatchSize: 500, reportInterval: 60_000 });
    await upload(makeFile(1500), options).promise;
    const reportSizes = server.callsTo("parts").map((call) => call.body.parts.length);
    assert.ok(reportSizes.every((size) => size <= 64), `report batches: ${reportSizes}`);
    assert.equal(reportSizes.reduce((a, b) => a + b, 0), 150);
  });
});

describe("sessions", () => {
  test("one session id per handle goes with create, sign, report and the detail", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const handle = upload(makeFile(100), server.options({ partSize: 10, concurrency: 1 }));
    await handle.promise;
    assert.match(handle.session, /^[A-Za-z0-9_-]{8,64}$/);
    for (const call of server.calls.filter((call) => call.method === "POST" && !call.path.endsWith("/complete/"))) {
      assert.equal(call.body.session, handle.session, `${call.path} carries the session`);
    }
    const other = upload(makeFile(10), server.options());
    await other.promise;
    assert.notEqual(other.session, handle.session, "each handle has its own session");
  });

  test("emits `sessions` when the server counts another live session on the upload", async () => {
    const bytes = bytesOf(100);
    const file = makeFile(100, { bytes });
    const server = new FakePartwise({ partSize: 10 });
    const record = server.seed(file, { fingerprint: await fileFingerprint(file), uploaded: [1], bytes });
    record.sessions.set("another-device-1", server.clock);
    const seen = [];
    const handle = upload(file, server.options({ onSessions: (detail) => seen.push(detail.others) }));
    await handle.promise;
    assert.equal(seen[0], 1, "another live session is reported");
    assert.equal(handle.otherSessions, seen.at(-1));
  });

  test("two handles uploading one file share it: disjoint parts at any moment, one upload, both succeed", async () => {
    const bytes = bytesOf(400);
    const file = makeFile(400, { bytes });
    const server = new FakePartwise({ partSize: 10 });
    const sending = new Map(); // part number -> PUTs of it in flight
    let overlaps = 0;
    const options = () => {
      const opts = server.options({ partSize: 10, concurrency: 2, leasePollInterval: 1 });
      opts.putPart = async (request) => {
        const number = Number(request.url.match(/\/(\d+)\?/)[1]);
        sending.set(number, (sending.get(number) ?? 0) + 1);
        if (sending.get(number) > 1) overlaps++;
        try {
          await tick();
          return await server.putPart(request);
        } finally {
          sending.set(number, sending.get(number) - 1);
        }
      };
      return opts;
    };
    const first = upload(file, options());
    const second = upload(file, options());
    const [a, b] = await Promise.all([first.promise, second.promise]);
    assert.equal(a.id, b.id, "one upload");
    assert.equal(server.uploads.size, 1);
    assert.equal(a.checksum, sha256(bytes));
    assert.equal(overlaps, 0, "no part is sent by both at once");
    assert.equal(first.state, "completed");
    assert.equal(second.state, "completed");
    const perHandle = [first, second].map((handle) => handle.progress().bytesSent);
    assert.ok(perHandle.every((sent) => sent > 0), `both sent parts: ${perHandle}`);
    // A part the other session finished between this one's look at S3 and its sign call may be
    // sent again (the server signs parts S3 holds, as it always did): rare, and never at once.
    const total = perHandle[0] + perHandle[1];
    assert.ok(total >= 400 && total <= 440, `bytes sent by both: ${perHandle}`);
  });

  test("a part refused as gone because another session completed the upload is that success", async () => {
    const bytes = bytesOf(40);
    const file = makeFile(40, { bytes });
    const server = new FakePartwise({ partSize: 10 });
    const errors = [];
    server.putHook = (put) => {
      if (put.number !== 3) return undefined;
      // The other session sent the rest and completed: S3 no longer knows the multipart upload.
      const record = server.uploads.get(put.uploadId);
      record.object = bytes;
      record.status = "completed";
      return { status: 404, etag: null, body: "<Error><Code>NoSuchUpload</Code></Error>" };
    };
    const handle = upload(file, server.options({ partSize: 10, concurrency: 1, onError: (error) => errors.push(error) }));
    const completed = await handle.promise;
    assert.equal(completed.status, "completed");
    assert.equal(handle.state, "completed");
    assert.deepEqual(errors, []);
  });

  test("a completion answered 409 because the other session completed first is that success", async () => {
    const bytes = bytesOf(40);
    const file = makeFile(40, { bytes });
    const server = new FakePartwise({ partSize: 10 });
    const realFetch = server.fetch;
    server.fetch = async (url, init) => {
      if (url.endsWith("/complete/")) {
        const record = [...server.uploads.values()][0];
        record.object = bytes;
        record.status = "completed"; // the other session's complete won the race
      }
      return realFetch(url, init);
    };
    const completed = await upload(file, server.options({ partSize: 10 })).promise;
    assert.equal(completed.status, "completed");
    assert.equal(completed.checksum, sha256(bytes));
  });
});

describe("connection feedback", () => {
  test("a network failure emits retry and connection lost before waiting, then restored; progress is stalled meanwhile", async () => {
    const server = new FakePartwise({ partSize: 10 });
    let failures = 2;
    server.putHook = (put) => (put.number === 1 && failures-- > 0 ? "network" : undefined);
    const log = [];
    const options = server.options({ partSize: 10, concurrency: 1, retryDelays: [100, 200, 400] });
    options.sleep = async (ms) => {
      log.push(["sleep", ms]);
      await tick();
    };
    const handle = upload(makeFile(30), options);
    handle.on("retry", (retry) => log.push(["retry", retry.number, retry.attempt, retry.delay]));
    handle.on("connection", (state) => log.push(["connection", state.state, state.attempt, state.retryAt]));
    handle.on("progress", (progress) => {
      if (progress.stalled) log.push(["stalled", progress.speed, progress.eta]);
    });
    await handle.promise;
    const now = server.clock;
    const firstRetry = log.findIndex((entry) => entry[0] === "retry");
    assert.deepEqual(log[firstRetry], ["retry", 1, 1, 75]);
    assert.deepEqual(log[firstRetry + 1], ["connection", "lost", 1, now + 75]);
    assert.deepEqual(log[firstRetry + 2], ["stalled", null, null]);
    assert.deepEqual(log[firstRetry + 3], ["sleep", 75], "the events come before the wait");
    const restored = log.filter((entry) => entry[0] === "connection" && entry[1] === "restored");
    assert.equal(restored.length, 1, "restored once, on the next success");
    assert.equal(handle.progress().stalled, false);
  });

  test("API calls that fail with 5xx report a lost connection too", async () => {
    const server = new FakePartwise({ partSize: 10 });
    server.apiFaults.push({ method: "POST", path: /\/parts\/$/, answers: [502] });
    const states = [];
    const options = server.options({ partSize: 10, onConnection: (state) => states.push(state.state) });
    await upload(makeFile(30), options).promise;
    assert.deepEqual(states, ["lost", "restored"]);
  });

  test("the `online` event cuts the retry wait short", async () => {
    const server = new FakePartwise({ partSize: 10 });
    let offline = true;
    server.putHook = () => (offline ? "network" : undefined);
    const online = new EventTarget();
    const options = server.options({ partSize: 10, concurrency: 1, retryDelays: [3_600_000], onlineTarget: online });
    // A wait that only ends when aborted: the upload can only go on if `online` cuts it.
    options.sleep = (ms, signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    const handle = upload(makeFile(10), options);
    const lost = deferred();
    handle.on("connection", (state) => state.state === "lost" && lost.resolve());
    await lost.promise;
    offline = false;
    online.dispatchEvent(new Event("online"));
    const completed = await handle.promise;
    assert.equal(completed.status, "completed");
  });

  test("bytesUploaded never decreases, even when the server forgets a part", async () => {
    const server = new FakePartwise({ partSize: 10 });
    let lose = true;
    const realFetch = server.fetch;
    server.fetch = async (url, init) => {
      if (lose && url.endsWith("/complete/")) {
        lose = false;
        [...server.uploads.values()][0].s3.delete(2);
      }
      return realFetch(url, init);
    };
    const seen = [];
    await upload(makeFile(40), server.options({ partSize: 10, onProgress: (p) => seen.push(p.bytesUploaded) })).promise;
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `never backwards: ${seen}`);
    assert.equal(seen.at(-1), 40);
  });
});

describe("instrumentation", () => {
  test("marks read, hash, PUT, create, sign and the waits as partwise:* measures for the bench", async () => {
    performance.clearMeasures();
    const server = new FakePartwise({ partSize: 10 });
    await upload(makeFile(200), server.options({ partSize: 10 })).promise;
    const names = new Set(performance.getEntriesByType("measure").map((entry) => entry.name));
    const expected = ["read", "hash", "put", "create", "sign", "sign-wait", "report-wait"];
    for (const name of expected.map((name) => `partwise:${name}`)) {
      assert.ok(names.has(name), `${name} in ${[...names]}`);
    }
    assert.equal(performance.getEntriesByName("partwise:put").length, 20);
    assert.equal(performance.getEntriesByName("partwise:read").length, 20, "one read per part");
    performance.clearMeasures();
  });
});

describe("requests per upload", () => {
  test("a 128-part upload with hashing 4x faster than the link: create, 2 growing sign calls, complete, 2 reports", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const file = makeFile(1280);
    let reads = 0;
    const counted = watchedFile(file, (blob) => (reads++, blob.arrayBuffer()));
    const options = server.options({ partSize: 10 });
    const putPart = options.putPart;
    options.putPart = async (request) => {
      // The link is the bottleneck, as on a real network: part n is through only once the
      // hasher has read 4n parts (2 more reads are the fingerprint's).
      const number = Number(request.url.match(/\/(\d+)\?/)[1]);
      server.clock += 50;
      const result = await putPart(request);
      await until(() => reads >= Math.min(2 + 128, 2 + 4 * number), "the hasher ahead");
      return result;
    };
    await upload(counted, options).promise;
    const besidesReports = server.calls.filter((call) => !call.path.endsWith("/parts/"));
    const sizes = server.callsTo("sign").map((call) => call.body.parts.length);
    assert.equal(server.callsTo("create")[0].body.sign.parts.length, 16, "create signs 2 × (concurrency + lookahead) parts");
    assert.ok(besidesReports.length <= 4, `calls: create, sign ${sizes}, complete`);
    assert.ok(sizes.slice(1).every((size, i) => size > sizes[i] || i === sizes.length - 2), `growing: ${sizes}`);
    assert.equal(server.callsTo("parts").length, 2, "128 parts: two reports of 64");
  });
});

describe("checksums off", () => {
  test("sends the parts unhashed, signs them in the create call and one more, and never resumes", async () => {
    const server = new FakePartwise({ partSize: 10 });
    const bytes = bytesOf(1280);
    let reads = 0;
    const counted = watchedFile(makeFile(1280, { bytes }), (blob) => (reads++, blob.arrayBuffer()));
    const options = server.options({ partSize: 10, checksums: false });
    const completed = await upload(counted, options).promise;
    assert.equal(completed.checksum, sha256(bytes), "the server still knows the object's SHA-256");
    assert.equal(reads, 2, "only the fingerprint reads the file");
    const create = server.callsTo("create")[0].body;
    assert.equal(create.checksum_algorithm, undefined);
    assert.equal(create.resume, undefined, "nothing could prove an unfinished upload is this file");
    assert.equal(create.sign.parts.length, 100);
    const signed = [create, ...server.callsTo("sign").map((call) => call.body)].flatMap((body) => body.sign?.parts ?? body.parts);
    assert.ok(signed.every((part) => part.checksum === undefined), "no checksum is signed");
    const besidesReports = server.calls.filter((call) => !call.path.endsWith("/parts/"));
    assert.equal(besidesReports.length, 3, "create, one sign call, complete");
  });
});

describe("option corners", () => {
  for (const [concurrency, lookahead, hashAhead] of [[1, 0, "batch"], [1, 0, "buffer"], [3, 0, "batch"], [2, 0, "buffer"]]) {
    test(`completes with concurrency ${concurrency}, lookahead ${lookahead}, hashAhead ${hashAhead}`, async () => {
      const server = new FakePartwise({ partSize: 10 });
      const bytes = bytesOf(230);
      const options = server.options({ partSize: 10, concurrency, lookahead, hashAhead });
      const completed = await upload(makeFile(230, { bytes }), options).promise;
      assert.equal(completed.checksum, sha256(bytes));
    });
  }
});

describe("sharing an upload with a session that is completing it", () => {
  test("a resume that finds the upload completing waits for the other session's answer", async () => {
    const bytes = bytesOf(40);
    const file = makeFile(40, { bytes });
    const server = new FakePartwise({ partSize: 10 });
    server.putHook = (put) => (put.number === 1 ? undefined : new Promise(() => {}));
    let polls = 0;
    const options = server.options({ partSize: 10, leasePollInterval: 1 });
    options.sleep = async () => {
      // The other session's completion lands after two polls.
      if (++polls === 2) {
        const record = [...server.uploads.values()][0];
        record.object = bytes;
        record.status = "completed";
      }
      await tick();
    };
    const handle = upload(file, options);
    await until(() => server.puts.length === 4, "parts in flight");
    handle.pause();
    [...server.uploads.values()][0].status = "completing"; // the other session completes it
    handle.resume();
    const completed = await handle.promise;
    assert.equal(completed.status, "completed");
    assert.equal(polls, 2);
    assert.equal(handle.state, "completed");
  });
});
