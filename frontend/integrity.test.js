// The part digest is the server's choice (uploads/integrity.py): S3 stores differ in which
// per-part checksum they verify, so the server names each upload's `checksum_algorithm`
// (SHA256, CRC32C or MD5) and the client hashes, signs, sends and proves its parts with that
// one, whatever it asked for. Run with `node --test` in frontend/.
//
// The client remembers the server's choice per API endpoint for the page's next file, so every
// test here talks to an endpoint of its own (the fake answers on any host).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { fileFingerprint, upload } from "./client.js";
import { PartHasher } from "./client/hasher.js";
import { DIGEST_HEADERS, DIGESTS, FakePartwise, bytesOf, makeFile, sha256 } from "./fake_partwise.js";

let endpoints = 0;
/** A Partwise endpoint no other test has used (the client's memory of choices is per endpoint). */
const freshEndpoint = () => `https://partwise-${++endpoints}.test/api/uploads/`;

const slice = (bytes, number, partSize) => bytes.subarray((number - 1) * partSize, number * partSize);

/** Every checksum the client sent to be signed: the create's sign batch, then the sign calls. */
function signedChecksums(server) {
  const create = server.callsTo("create").flatMap((call) => call.body.sign?.parts ?? []);
  const sign = server.callsTo("sign").flatMap((call) => call.body.parts);
  return { create, sign };
}

/** Asserts that every part carried `algorithm`'s digest of its bytes: signed, reported and sent. */
function assertCarried(server, bytes, partSize, algorithm) {
  const digest = DIGESTS[algorithm];
  const { sign } = signedChecksums(server);
  assert.ok(sign.length > 0, "parts are signed after the create call");
  for (const part of sign) {
    assert.equal(part.checksum, digest(slice(bytes, part.number, partSize)), `part ${part.number} is signed with its ${algorithm}`);
  }
  for (const part of server.callsTo("parts").flatMap((call) => call.body.parts)) {
    assert.equal(part.checksum, digest(slice(bytes, part.number, partSize)), `part ${part.number} is reported with its ${algorithm}`);
  }
  const header = DIGEST_HEADERS[algorithm];
  for (const put of server.puts) {
    assert.deepEqual(Object.keys(put.headers), [header], `part ${put.number} is sent with ${header} only`);
    assert.equal(put.headers[header], digest(slice(bytes, put.number, partSize)));
  }
  assert.deepEqual(server.violations, [], "every PUT carries the headers as signed");
}

describe("a server that chooses another digest than the client asked", () => {
  for (const [algorithm, header] of [["MD5", "Content-MD5"], ["CRC32C", "x-amz-checksum-crc32c"]]) {
    test(`${algorithm}: every part is hashed with ${algorithm}, sent with ${header}, and the upload completes`, async () => {
      const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => algorithm });
      const bytes = bytesOf(100);
      const handle = upload(makeFile(100, { bytes }), server.options({ partSize: 10, endpoint: freshEndpoint() }));
      const completed = await handle.promise;

      assert.equal(completed.status, "completed");
      assert.equal(completed.checksumAlgorithm, algorithm);
      assert.equal(completed.checksum, sha256(bytes), "the object holds the file's bytes");
      const [create] = server.callsTo("create");
      assert.equal(create.body.checksum_algorithm, "SHA256", "the client first asks for SHA-256");
      assert.ok(create.body.sign.parts.length > 0, "and sends a sign batch hashed with it");
      // The server signed none of them: the create's batch is ignored, the parts hashed again.
      const { sign } = signedChecksums(server);
      assert.deepEqual(sign.map((part) => part.number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.ok(sign.every((part) => part.checksum.length !== 44), "no part is signed with a SHA-256");
      assertCarried(server, bytes, 10, algorithm);
      assert.equal(server.puts.length, 10, "each part is sent once");
    });
  }

  test("the page's next file for the same endpoint hashes with the server's last choice from the start", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "MD5" });
    const endpoint = freshEndpoint();
    await upload(makeFile(60, { seed: 2, name: "first.bin" }), server.options({ partSize: 10, endpoint })).promise;
    const callsOfFirst = server.calls.length;
    const putsOfFirst = server.puts.length;
    assert.ok(server.callsTo("sign").length >= 1, "the first file signs after its create call");

    const bytes = bytesOf(60, 3);
    const completed = await upload(makeFile(60, { bytes, name: "second.bin" }), server.options({ partSize: 10, endpoint })).promise;
    assert.equal(completed.checksum, sha256(bytes));
    const calls = server.calls.slice(callsOfFirst);
    const create = calls.find((call) => call.method === "POST" && call.path === "/api/uploads/");
    assert.equal(create.body.checksum_algorithm, "MD5", "the second file asks for what the server chose");
    for (const part of create.body.sign.parts) {
      assert.equal(part.checksum, DIGESTS.MD5(slice(bytes, part.number, 10)), `part ${part.number} hashed with MD5 before create`);
    }
    assert.equal(create.body.sign.parts.length, 6, "the create call signs every part");
    assert.deepEqual(calls.filter((call) => call.path.endsWith("/sign/")), [], "so no sign call is needed");
    for (const put of server.puts.slice(putsOfFirst)) {
      assert.equal(put.headers["Content-MD5"], DIGESTS.MD5(slice(bytes, put.number, 10)));
    }
    assert.deepEqual(server.violations, []);
  });

  test("another endpoint starts again from SHA-256", async () => {
    const md5Server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "MD5" });
    await upload(makeFile(30), md5Server.options({ partSize: 10, endpoint: freshEndpoint() })).promise;
    const server = new FakePartwise({ partSize: 10 });
    await upload(makeFile(30), server.options({ partSize: 10, endpoint: freshEndpoint() })).promise;
    assert.equal(server.callsTo("create")[0].body.checksum_algorithm, "SHA256");
    assert.equal(server.callsTo("sign").length, 0, "its create call signs every part");
  });

  test("checksums off, but the server forces SHA-256: the parts are hashed and signed with SHA-256", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "SHA256" });
    const bytes = bytesOf(80);
    const options = server.options({ partSize: 10, checksums: false, endpoint: freshEndpoint() });
    const completed = await upload(makeFile(80, { bytes }), options).promise;

    assert.equal(completed.checksumAlgorithm, "SHA256");
    assert.equal(completed.checksum, sha256(bytes));
    const [create] = server.callsTo("create");
    assert.equal(create.body.checksum_algorithm, undefined, "the client asked for none");
    assert.ok(create.body.sign.parts.every((part) => part.checksum === undefined), "and hashed nothing before create");
    assertCarried(server, bytes, 10, "SHA256");
    assert.equal(signedChecksums(server).sign.length, 8, "every part is signed after create, with its SHA-256");
  });
});

describe("resuming an upload whose parts carry MD5", () => {
  test("a fresh handle proves the file with MD5 and sends only the missing parts", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "MD5", integrityOf: () => "etag" });
    const bytes = bytesOf(100, 7);
    const file = makeFile(100, { bytes });
    const record = server.seed(file, {
      fingerprint: await fileFingerprint(file),
      uploaded: [1, 2, 3, 4],
      bytes,
      partSize: 10,
      checksumAlgorithm: "MD5",
    });
    record.integrity = "etag";
    const resumes = [];
    const mismatches = [];
    const options = server.options({ endpoint: freshEndpoint(), verifyParts: Infinity });
    options.onResume = (detail) => resumes.push(detail);
    options.onMismatch = (detail) => mismatches.push(detail);
    const completed = await upload(file, options).promise;

    assert.equal(completed.id, record.id, "the unfinished upload is continued");
    assert.equal(completed.checksum, sha256(bytes));
    assert.equal(resumes.length, 1);
    assert.equal(resumes[0].integrity, "etag");
    assert.equal(resumes[0].unverified, false);
    assert.deepEqual(mismatches, [], "the MD5s of the uploaded parts prove the file");
    assert.deepEqual(server.puts.map((put) => put.number).sort((a, b) => a - b), [5, 6, 7, 8, 9, 10], "only the missing parts are sent");
    assertCarried(server, bytes, 10, "MD5");
  });

  test("a file whose bytes differ from the uploaded parts' MD5s is not resumed", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "MD5" });
    const bytes = bytesOf(50, 8);
    const file = makeFile(50, { bytes });
    const other = bytesOf(50, 9);
    const record = server.seed(file, { fingerprint: await fileFingerprint(file), uploaded: [1], bytes: other, partSize: 10, checksumAlgorithm: "MD5" });
    const mismatches = [];
    const options = server.options({ endpoint: freshEndpoint() });
    options.onMismatch = (detail) => mismatches.push(detail);
    const completed = await upload(file, options).promise;
    assert.equal(mismatches.length, 1);
    assert.notEqual(completed.id, record.id, "a new upload is started");
    assert.equal(completed.checksum, sha256(bytes));
  });
});

describe("completion finding a corrupted part (409 part_mismatch)", () => {
  test("the parts it names are sent again, and the upload completes", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "MD5", integrityOf: () => "etag" });
    server.mismatchOnce([2]);
    const bytes = bytesOf(50, 4);
    const states = [];
    const options = server.options({ partSize: 10, endpoint: freshEndpoint() });
    options.onStateChange = (state) => states.push(state);
    const completed = await upload(makeFile(50, { bytes }), options).promise;

    assert.equal(completed.status, "completed");
    assert.equal(completed.checksum, sha256(bytes));
    const completions = server.callsTo("complete");
    assert.equal(completions.length, 2, "completion is asked again after part 2 is sent again");
    const puts = server.puts.map((put) => put.number);
    assert.equal(puts.filter((number) => number === 2).length, 2, "part 2 is sent twice");
    assert.equal(puts.length, 6, "and no other part again");
    const lastSign = server.callsTo("sign").at(-1).body.parts;
    assert.deepEqual(lastSign.map((part) => part.number), [2], "part 2 is signed again");
    assert.equal(lastSign[0].checksum, DIGESTS.MD5(slice(bytes, 2, 10)));
    assert.deepEqual(states, ["preparing", "uploading", "completing", "uploading", "completing", "completed"]);
    assertCarried(server, bytes, 10, "MD5");
  });

  test("an upload JSON says what catches a corrupted part", async () => {
    const server = new FakePartwise({ partSize: 10, chooseAlgorithm: () => "" });
    const completed = await upload(makeFile(20), server.options({ partSize: 10, endpoint: freshEndpoint() })).promise;
    assert.equal(completed.checksumAlgorithm, "");
    assert.equal(completed.integrity, "none");
    assert.equal(completed.unverified, true);
    assert.ok(server.puts.every((put) => Object.keys(put.headers).length === 0), "parts carry no digest");
  });
});

describe("the part hasher", () => {
  test("hashes with its algorithm, and starts over when the algorithm or the part size changes", async () => {
    const bytes = bytesOf(30, 5);
    const hasher = new PartHasher(makeFile(30, { bytes }), { buffers: 2 });
    hasher.use(10, "SHA256");
    assert.equal(await hasher.hash(2), sha256(slice(bytes, 2, 10)));
    assert.ok(hasher.bytes(2), "the bytes read are kept for the PUT");
    hasher.use(10, "SHA256");
    assert.ok(hasher.has(2), "the same plan and digest keep the checksums");

    hasher.use(10, "CRC32C");
    assert.equal(hasher.has(2), false, "another digest clears the checksums");
    assert.equal(hasher.bytes(2), undefined, "and the kept bytes");
    assert.equal(await hasher.hash(2), DIGESTS.CRC32C(slice(bytes, 2, 10)));
    hasher.use(10, "MD5");
    assert.equal(await hasher.hash(3), DIGESTS.MD5(slice(bytes, 3, 10)));
    hasher.use(15, "MD5");
    assert.equal(hasher.has(3), false, "another part size clears them too");
    assert.equal(await hasher.hash(2), DIGESTS.MD5(bytes.subarray(15, 30)));
  });

  test("a hashing under way when the digest changes is not taken for the new digest", async () => {
    const bytes = bytesOf(20, 6);
    const hasher = new PartHasher(makeFile(20, { bytes }), { buffers: 2 });
    hasher.use(10, "SHA256");
    const old = hasher.hash(1);
    hasher.use(10, "MD5");
    const fresh = hasher.hash(1);
    assert.equal(await old, sha256(slice(bytes, 1, 10)));
    assert.equal(await fresh, DIGESTS.MD5(slice(bytes, 1, 10)));
    assert.equal(hasher.checksum(1), DIGESTS.MD5(slice(bytes, 1, 10)));
  });
});
