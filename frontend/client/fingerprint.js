/**
 * Bytes and part arithmetic: SHA-256 in S3's base64 form, the file fingerprint that names a
 * file across sessions, and how a file is cut into parts (the server's plan, repeated here
 * only to hash the first parts before the server answers). Pure: no network, no state.
 * tests/vectors/{fingerprints,part_ranges}.json hold the same rules for the Python client.
 */

export const MiB = 1024 * 1024;

/** Bytes hashed at each end of the file for its fingerprint. */
export const FINGERPRINT_SAMPLE = MiB;

/** S3's limits on parts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html). */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PARTS = 10_000;
/** The server's default UPLOADS_PART_SIZE: the part size guessed before it answers. */
export const DEFAULT_PART_SIZE = 8 * MiB;

export function toBase64(bytes) {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let text = "";
  // In chunks: String.fromCharCode(...) of a whole digest is fine, of a MiB would overflow.
  for (let i = 0; i < view.length; i += 0x8000) {
    text += String.fromCharCode(...view.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

export function toHex(bytes) {
  return [...new Uint8Array(bytes)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Base64 SHA-256 of bytes already in memory (ArrayBuffer or view), as x-amz-checksum-sha256. */
export async function sha256OfBytes(bytes) {
  return toBase64(await crypto.subtle.digest("SHA-256", bytes));
}

/** Base64 SHA-256 of a Blob, as S3's x-amz-checksum-sha256. Reads the whole blob. */
export async function sha256Base64(blob) {
  return sha256OfBytes(await blob.arrayBuffer());
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

/**
 * The part size the server plans for `size` bytes given a preferred one: raised (to a whole
 * MiB) when the file would not fit in MAX_PARTS parts, as uploads/parts.py plan_parts does.
 * Only a guess made before the server answers: a wrong one costs the first sign batch, no more.
 */
export function planPartSize(size, preferred = DEFAULT_PART_SIZE) {
  const needed = Math.ceil(size / MAX_PARTS);
  if (needed <= preferred) return preferred;
  return Math.ceil(needed / MiB) * MiB;
}

/** How many parts `size` bytes make: at least one (a 0-byte file is one empty part). */
export function partCount(size, partSize) {
  return Math.max(1, Math.ceil(size / partSize));
}

/** [start, endExclusive] of part `number` (1-based). */
export function partRange(number, partSize, size) {
  const start = (number - 1) * partSize;
  return [start, Math.min(start + partSize, size)];
}

/** Every part's [start, endExclusive], in order. */
export function partRanges(size, partSize) {
  return Array.from({ length: partCount(size, partSize) }, (_, i) => partRange(i + 1, partSize, size));
}
