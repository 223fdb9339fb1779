/**
 * Partwise browser client: resumable, parallel, checksummed multipart uploads straight to S3.
 *
 * The one public entry (dependency-free ES modules, no build step). `upload(file, options)`
 * returns a handle with events, pause(), resume(), cancel() and a promise of the completed
 * upload; `listUnfinishedUploads()` and `upload(file, { uploadId })` resume uploads started in
 * any other browser session. The modules under client/ each do one thing:
 *   options.js      DEFAULT_OPTIONS and their merge
 *   errors.js       UploadError, the one error type
 *   retry.js        the one retry policy (isRetryable, backoff), for API calls and part PUTs
 *   api.js          the JSON API (fetch) and the calls outside an upload
 *   transport.js    part PUTs (XHR, for byte progress) and S3's error answers
 *   fingerprint.js  SHA-256, the file fingerprint, part ranges
 *   queues.js       sign/report batch sizes, buffer slots, the report queue
 *   hasher.js       each part's SHA-256 once, its bytes kept (bounded) to be sent as hashed
 *   trace.js        `partwise:*` performance marks for the bench's time breakdown
 *   handle.js       the upload handle: state, events and the part loop
 * The server decides, signs, checks and records; the bytes go straight from the browser to S3.
 * Wire names are snake_case (the API's); everything this module hands out is camelCase.
 */
export { MiB, FINGERPRINT_SAMPLE, fileFingerprint, partRanges, planPartSize, sha256Base64 } from "./client/fingerprint.js";
export { DEFAULT_OPTIONS } from "./client/options.js";
export { ETAG_HELP, UploadError } from "./client/errors.js";
export { RETRY_DELAYS, backoffDelay, isRetryable, isRetryableStatus, sleep } from "./client/retry.js";
export { abortUpload, camelize, getUpload, listUnfinishedUploads, listUploads } from "./client/api.js";
export { partError, xhrPutPart } from "./client/transport.js";
export { batchSizes } from "./client/queues.js";
export { EXPIRY_MARGIN_MS, UploadHandle, upload } from "./client/handle.js";
