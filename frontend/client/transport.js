/**
 * The part transport: one PUT of one part to a presigned S3 URL (XHR, for byte progress), and
 * the reading of S3's answer into an UploadError with a stable code and whether to retry or
 * sign again. tests/vectors/s3_errors.json holds the same table for the Python client.
 */
import { UploadError } from "./errors.js";
import { isRetryableStatus } from "./retry.js";

// Headers a script may not set: the browser sets Content-Length from the body itself.
const FORBIDDEN_HEADERS = new Set(["content-length", "host", "connection"]);

/**
 * PUT one part with XMLHttpRequest, for byte-level upload progress. `body` is the part's bytes
 * (an ArrayBuffer or view already read for hashing) or a Blob slice. Resolves with the response
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

// S3's words for "the bytes are not the ones that were hashed".
const CHECKSUM_CODES = new Set(["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"]);
// S3's words for "try again": it gave up waiting for the body, or asks to slow down.
const RETRY_CODES = new Set(["RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable"]);

/**
 * Classify a non-2xx answer of S3 to a part PUT. The error's `resign` says whether the URL must
 * be signed again before the next attempt (it expired).
 */
export function partError(number, result) {
  const s3Code = s3ErrorField(result.body, "Code");
  const s3Message = s3ErrorField(result.body, "Message");
  const options = { status: result.status, response: { s3Code, s3Message, body: result.body } };
  const make = (message, code, retryable = false, resign = false) =>
    Object.assign(new UploadError(message, { ...options, code, retryable }), { resign });
  if (result.status === 403 && /expired/i.test(`${s3Message} ${s3Code}`)) {
    return make(`The link for part ${number} expired; signing it again.`, "url_expired", true, true);
  }
  if (isRetryableStatus(result.status) || RETRY_CODES.has(s3Code)) {
    return make(`The storage server failed on part ${number} (${result.status}).`, "storage_unavailable", true);
  }
  if (CHECKSUM_CODES.has(s3Code)) {
    return make(
      `The storage server found that part ${number} does not match its checksum: the file changed while it was being sent.`,
      "checksum_mismatch",
    );
  }
  if (s3Code === "SignatureDoesNotMatch") {
    return make(
      `The storage server refused part ${number}: its size or checksum differs from what was signed (did the file change?).`,
      "part_refused",
    );
  }
  if (s3Code === "NoSuchUpload" || result.status === 404) {
    return make("The upload no longer exists in storage (it was cancelled or expired).", "upload_gone");
  }
  return make(
    `The storage server refused part ${number} (${result.status}${s3Code ? ` ${s3Code}` : ""}).`,
    "part_refused",
  );
}
