// The JS client against the shared test vectors in tests/vectors/ (the Python client reads the
// same files): retry classification and backoff, S3 error answers, fingerprints, part ranges
// and batch sizes. One protocol, two clients: a disagreement fails here or in pytest.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  DEFAULT_OPTIONS,
  RETRY_DELAYS,
  backoffDelay,
  batchSizes,
  fileFingerprint,
  isRetryableStatus,
  partError,
  partRanges,
} from "./client.js";
import { apiCall } from "./client/api.js";

const vector = (name) => JSON.parse(readFileSync(new URL(`../tests/vectors/${name}`, import.meta.url), "utf8"));

describe("retry.json", () => {
  const retry = vector("retry.json");

  test("the retry schedule is the client's default", () => {
    assert.deepEqual([...RETRY_DELAYS], retry.retry_delays_ms);
    assert.deepEqual([...DEFAULT_OPTIONS.retryDelays], retry.retry_delays_ms);
    assert.equal(DEFAULT_OPTIONS.retryDelays.length, retry.retries);
  });

  for (const { attempt, random, delay_ms: expected } of retry.backoff) {
    test(`backoff of attempt ${attempt} with random ${random} is ${expected} ms`, () => {
      assert.equal(backoffDelay(retry.retry_delays_ms, attempt, () => random), expected);
    });
  }

  for (const { status, retryable } of retry.statuses) {
    test(`status ${status} is ${retryable ? "" : "not "}retried, by API calls and part PUTs alike`, async () => {
      assert.equal(isRetryableStatus(status), retryable);
      const fetch = async () => {
        if (status === 0) throw new TypeError("fetch failed");
        return new Response(JSON.stringify({ code: "x", detail: "x" }), { status });
      };
      const error = await apiCall({ fetch, headers: {}, csrfToken: "t" }, "POST", "http://x.test/api/", {}, undefined).catch((e) => e);
      assert.equal(error.retryable, retryable, "API call");
      if (status !== 0) assert.equal(partError(1, { status, body: "" }).retryable, retryable, "part PUT");
    });
  }
});

describe("s3_errors.json", () => {
  for (const { status, body, code, retryable, resign, why } of vector("s3_errors.json")) {
    test(`${status} ${why}: ${code}, ${retryable ? "retried" : "final"}${resign ? ", signed again" : ""}`, () => {
      const error = partError(7, { status, body });
      assert.equal(error.code, code);
      assert.equal(error.retryable, retryable);
      assert.equal(Boolean(error.resign), resign);
      assert.equal(error.status, status);
    });
  }
});

describe("fingerprints.json", () => {
  for (const { name, size, last_modified_ms: lastModified, content, fingerprint } of vector("fingerprints.json")) {
    test(`${name} (${size} bytes)`, async () => {
      assert.equal(content, "pattern: byte i = (i * 31 + 7) % 251");
      const bytes = new Uint8Array(size);
      for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) % 251;
      const file = new File([bytes], name, { lastModified });
      assert.equal(await fileFingerprint(file), fingerprint);
    });
  }
});

describe("part_ranges.json", () => {
  for (const { size, part_size: partSize, part_count: count, ranges } of vector("part_ranges.json")) {
    test(`${size} bytes in parts of ${partSize}`, () => {
      const computed = partRanges(size, partSize);
      assert.equal(computed.length, count ?? ranges.length);
      assert.deepEqual(computed, ranges);
    });
  }
});

describe("batches.json", () => {
  const batches = vector("batches.json");

  test("the client's default batch sizes and report interval", () => {
    assert.equal(DEFAULT_OPTIONS.signBatchSize, batches.sign_batch_size);
    assert.equal(DEFAULT_OPTIONS.reportBatchSize, batches.report_batch_size);
    assert.equal(DEFAULT_OPTIONS.reportInterval, batches.report_interval_ms);
  });

  for (const { limits, sign_batch: sign, report_batch: report, report_interval_ms: reportInterval } of batches.cases) {
    test(`limits ${JSON.stringify(limits)}: sign ${sign}, report ${report} every ${reportInterval} ms`, () => {
      assert.deepEqual(batchSizes(limits, DEFAULT_OPTIONS), { sign, report, reportInterval });
    });
  }
});
