// The per-part digests (client/digests.js) against the shared vectors in tests/vectors/digests.json
// (the Python client's part_digest reads the same file), and the hash workers' program, which
// runs the same functions from their source text (Node has no Workers: run here with a stand-in
// `self`).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { DIGEST_SOURCE, crc32c, digestBase64, md5 } from "./client/digests.js";
import { WORKER_SOURCE } from "./client/hashworkers.js";

const vectors = JSON.parse(readFileSync(new URL("../tests/vectors/digests.json", import.meta.url), "utf8"));

/** A case's input bytes; for a "view" case, a view into a larger buffer at that offset. */
function input(vector) {
  let bytes;
  if (vector.hex !== undefined) bytes = Uint8Array.from(vector.hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
  else if (vector.repeat) bytes = new Uint8Array(vector.repeat.count).fill(vector.repeat.byte);
  else {
    assert.equal(vector.pattern.formula, "(i * 31 + 7) % 251");
    bytes = new Uint8Array(vector.pattern.length);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) % 251;
  }
  if (!vector.view) return bytes;
  const { offset, fill, after } = vector.view;
  const buffer = new Uint8Array(offset + bytes.length + after).fill(fill);
  buffer.set(bytes, offset);
  return buffer.subarray(offset, offset + bytes.length);
}

const base64 = (bytes) => Buffer.from(bytes).toString("base64");
const crcBase64 = (crc) => base64(new Uint8Array([crc >>> 24, crc >>> 16, crc >>> 8, crc]));

describe("digests.json", () => {
  for (const vector of vectors) {
    test(`${vector.name}`, async () => {
      const bytes = input(vector);
      if (vector.view) assert.notEqual(bytes.byteOffset % 4, 0, "the view is unaligned");
      const digest = md5(bytes);
      assert.ok(digest instanceof Uint8Array && digest.length === 16);
      assert.equal(base64(digest), vector.md5, "md5");
      const crc = crc32c(bytes);
      assert.ok(Number.isInteger(crc) && crc >= 0 && crc <= 0xffffffff, "crc32c is a uint32");
      assert.equal(crcBase64(crc), vector.crc32c, "crc32c");
      assert.equal(await digestBase64("MD5", bytes), vector.md5, "digestBase64 MD5");
      assert.equal(await digestBase64("CRC32C", bytes), vector.crc32c, "digestBase64 CRC32C");
      assert.equal(await digestBase64("SHA256", bytes), vector.sha256, "digestBase64 SHA256");
    });
  }

  test("the vectors cover the published values and the edge cases", () => {
    const byName = Object.fromEntries(vectors.map((vector) => [vector.name, vector]));
    assert.equal(crc32c(input(byName["123456789"])), 0xe3069283);
    assert.equal(Buffer.from(md5(input(byName.abc))).toString("hex"), "900150983cd24fb0d6963f7d28e17f72");
    const sizes = new Set(vectors.map((vector) => input(vector).length));
    for (const size of [0, 1, 3, 9, 55, 56, 63, 64, 65, 1024 * 1024 + 3]) assert.ok(sizes.has(size), `${size} bytes`);
    assert.ok(vectors.some((vector) => vector.view));
  });
});

describe("inputs", () => {
  const bytes = input(vectors.find((vector) => vector.name === "pattern 1000 bytes"));

  test("an ArrayBuffer, a Uint8Array and other views of the same bytes digest alike", async () => {
    const expected = [base64(md5(bytes)), crc32c(bytes)];
    const buffer = bytes.slice().buffer;
    for (const form of [buffer, new Uint8Array(buffer), new DataView(buffer), new Uint32Array(buffer, 0, 250)]) {
      assert.deepEqual([base64(md5(form)), crc32c(form)], expected, form.constructor.name);
    }
    assert.equal(await digestBase64("SHA256", new DataView(buffer)), await digestBase64("SHA256", bytes));
  });

  test("every offset and length around a block digest as a copy does", () => {
    const buffer = new Uint8Array(300);
    for (let i = 0; i < buffer.length; i++) buffer[i] = (i * 7 + 1) & 0xff;
    for (let offset = 0; offset < 8; offset++) {
      for (const length of [0, 1, 7, 8, 9, 55, 56, 57, 63, 64, 65, 127, 128, 129, 200]) {
        const view = buffer.subarray(offset, offset + length);
        const copy = view.slice();
        assert.deepEqual(md5(view), md5(copy), `md5 at ${offset}, ${length} bytes`);
        assert.equal(crc32c(view), crc32c(copy), `crc32c at ${offset}, ${length} bytes`);
      }
    }
  });

  test("an unknown algorithm is an error, not a digest", async () => {
    for (const algorithm of ["SHA1", "sha256", "md5", "", undefined]) {
      await assert.rejects(digestBase64(algorithm, bytes), /unknown checksum algorithm/);
    }
  });

  test("what is not bytes is a TypeError", () => {
    assert.throws(() => md5("abc"), TypeError);
    assert.throws(() => crc32c([1, 2, 3]), TypeError);
  });
});

describe("the hash workers' program", () => {
  // WORKER_SOURCE run as a worker runs it: `self` is the worker's global scope.
  function startWorker() {
    const posted = [];
    const self = { postMessage: (message) => posted.push(message) };
    new Function("self", WORKER_SOURCE)(self);
    return { posted, send: (data) => self.onmessage({ data }) };
  }

  test("it is digests.js's own functions", () => {
    assert.ok(WORKER_SOURCE.includes(DIGEST_SOURCE));
    const digests = new Function(`${DIGEST_SOURCE}\nreturn { md5, crc32c };`)();
    const bytes = input(vectors.find((vector) => vector.name === "pattern 1 MiB + 3"));
    assert.deepEqual(digests.md5(bytes), md5(bytes));
    assert.equal(digests.crc32c(bytes), crc32c(bytes));
  });

  for (const vector of vectors.filter((v) => !v.repeat || v.repeat.count < 1000)) {
    test(`${vector.name}: each algorithm from a Blob`, async () => {
      const worker = startWorker();
      const blob = new Blob([input(vector)]);
      await worker.send({ id: 1, blob, algorithm: "MD5" });
      await worker.send({ id: 2, blob, algorithm: "CRC32C" });
      await worker.send({ id: 3, blob, algorithm: "SHA256" });
      assert.deepEqual(worker.posted, [
        { id: 1, checksum: vector.md5 },
        { id: 2, checksum: vector.crc32c },
        { id: 3, checksum: vector.sha256 },
      ]);
    });
  }

  test("an unknown algorithm comes back as an error", async () => {
    const worker = startWorker();
    await worker.send({ id: 9, blob: new Blob(["x"]), algorithm: "CRC64NVME" });
    assert.equal(worker.posted.length, 1);
    assert.equal(worker.posted[0].id, 9);
    assert.match(worker.posted[0].error, /unknown checksum algorithm "CRC64NVME"/);
  });
});

describe("speed", () => {
  test("MD5, CRC32C and SHA-256 of 64 MiB (printed, not asserted)", async () => {
    const bytes = new Uint8Array(64 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + 7) % 251;
    md5(bytes.subarray(0, 1 << 20)); // warm up the optimizing compiler
    crc32c(bytes.subarray(0, 1 << 20));
    const rate = async (name, digest) => {
      const start = performance.now();
      await digest(bytes);
      const seconds = (performance.now() - start) / 1000;
      console.log(`${name}: ${(64 / seconds).toFixed(0)} MiB/s (64 MiB in ${seconds.toFixed(3)} s)`);
    };
    await rate("MD5", md5);
    await rate("CRC32C", crc32c);
    await rate("SHA-256 (crypto.subtle)", (b) => crypto.subtle.digest("SHA-256", b));
  });
});
