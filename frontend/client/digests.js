/**
 * Per-part digests in the forms S3 stores verify: SHA-256 and CRC32C (x-amz-checksum-sha256,
 * x-amz-checksum-crc32c: AWS, MinIO) and MD5 (Content-MD5: Ceph RGW 16, GCS XML, R2), each as
 * base64 of the raw digest. The server names the one each part must carry (`checksum_algorithm`).
 *
 * MD5 and CRC32C are written here by hand: WebCrypto has neither (SHA-256 comes from
 * crypto.subtle), and the client takes no dependencies (files the page serves as they are).
 * Both are written for V8: MD5 with its 64 steps unrolled on int32 locals over a Uint32Array of
 * the bytes, CRC32C slicing by 16 bytes with tables built once.
 *
 * The hash workers (hashworkers.js) run these same functions: DIGEST_SOURCE is their source
 * text (Function.prototype.toString), so each function below refers only to the others in it
 * and to globals, never to module state: one implementation for the page and the workers.
 */

/** A Uint8Array over `bytes` (a Uint8Array, any other view, or an ArrayBuffer), not a copy. */
export function digestInput(bytes) {
  if (ArrayBuffer.isView(bytes)) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = Object.prototype.toString.call(bytes);
  if (tag === "[object ArrayBuffer]" || tag === "[object SharedArrayBuffer]") return new Uint8Array(bytes);
  throw new TypeError("expected a Uint8Array, an ArrayBuffer or an ArrayBuffer view");
}

/** MD5 over the first `length` words of `words` (whole 64-byte blocks, as little-endian words) into `state`. */
export function md5Blocks(state, words, length) {
  let a = state[0];
  let b = state[1];
  let c = state[2];
  let d = state[3];
  for (let i = 0; i < length; i += 16) {
    const aa = a;
    const bb = b;
    const cc = c;
    const dd = d;
    const x0 = words[i] | 0;
    const x1 = words[i + 1] | 0;
    const x2 = words[i + 2] | 0;
    const x3 = words[i + 3] | 0;
    const x4 = words[i + 4] | 0;
    const x5 = words[i + 5] | 0;
    const x6 = words[i + 6] | 0;
    const x7 = words[i + 7] | 0;
    const x8 = words[i + 8] | 0;
    const x9 = words[i + 9] | 0;
    const x10 = words[i + 10] | 0;
    const x11 = words[i + 11] | 0;
    const x12 = words[i + 12] | 0;
    const x13 = words[i + 13] | 0;
    const x14 = words[i + 14] | 0;
    const x15 = words[i + 15] | 0;
    a = (a + (d ^ (b & (c ^ d))) + x0 - 680876936) | 0;
    a = ((a << 7) | (a >>> 25)) + b | 0;
    d = (d + (c ^ (a & (b ^ c))) + x1 - 389564586) | 0;
    d = ((d << 12) | (d >>> 20)) + a | 0;
    c = (c + (b ^ (d & (a ^ b))) + x2 + 606105819) | 0;
    c = ((c << 17) | (c >>> 15)) + d | 0;
    b = (b + (a ^ (c & (d ^ a))) + x3 - 1044525330) | 0;
    b = ((b << 22) | (b >>> 10)) + c | 0;
    a = (a + (d ^ (b & (c ^ d))) + x4 - 176418897) | 0;
    a = ((a << 7) | (a >>> 25)) + b | 0;
    d = (d + (c ^ (a & (b ^ c))) + x5 + 1200080426) | 0;
    d = ((d << 12) | (d >>> 20)) + a | 0;
    c = (c + (b ^ (d & (a ^ b))) + x6 - 1473231341) | 0;
    c = ((c << 17) | (c >>> 15)) + d | 0;
    b = (b + (a ^ (c & (d ^ a))) + x7 - 45705983) | 0;
    b = ((b << 22) | (b >>> 10)) + c | 0;
    a = (a + (d ^ (b & (c ^ d))) + x8 + 1770035416) | 0;
    a = ((a << 7) | (a >>> 25)) + b | 0;
    d = (d + (c ^ (a & (b ^ c))) + x9 - 1958414417) | 0;
    d = ((d << 12) | (d >>> 20)) + a | 0;
    c = (c + (b ^ (d & (a ^ b))) + x10 - 42063) | 0;
    c = ((c << 17) | (c >>> 15)) + d | 0;
    b = (b + (a ^ (c & (d ^ a))) + x11 - 1990404162) | 0;
    b = ((b << 22) | (b >>> 10)) + c | 0;
    a = (a + (d ^ (b & (c ^ d))) + x12 + 1804603682) | 0;
    a = ((a << 7) | (a >>> 25)) + b | 0;
    d = (d + (c ^ (a & (b ^ c))) + x13 - 40341101) | 0;
    d = ((d << 12) | (d >>> 20)) + a | 0;
    c = (c + (b ^ (d & (a ^ b))) + x14 - 1502002290) | 0;
    c = ((c << 17) | (c >>> 15)) + d | 0;
    b = (b + (a ^ (c & (d ^ a))) + x15 + 1236535329) | 0;
    b = ((b << 22) | (b >>> 10)) + c | 0;
    a = (a + (c ^ (d & (b ^ c))) + x1 - 165796510) | 0;
    a = ((a << 5) | (a >>> 27)) + b | 0;
    d = (d + (b ^ (c & (a ^ b))) + x6 - 1069501632) | 0;
    d = ((d << 9) | (d >>> 23)) + a | 0;
    c = (c + (a ^ (b & (d ^ a))) + x11 + 643717713) | 0;
    c = ((c << 14) | (c >>> 18)) + d | 0;
    b = (b + (d ^ (a & (c ^ d))) + x0 - 373897302) | 0;
    b = ((b << 20) | (b >>> 12)) + c | 0;
    a = (a + (c ^ (d & (b ^ c))) + x5 - 701558691) | 0;
    a = ((a << 5) | (a >>> 27)) + b | 0;
    d = (d + (b ^ (c & (a ^ b))) + x10 + 38016083) | 0;
    d = ((d << 9) | (d >>> 23)) + a | 0;
    c = (c + (a ^ (b & (d ^ a))) + x15 - 660478335) | 0;
    c = ((c << 14) | (c >>> 18)) + d | 0;
    b = (b + (d ^ (a & (c ^ d))) + x4 - 405537848) | 0;
    b = ((b << 20) | (b >>> 12)) + c | 0;
    a = (a + (c ^ (d & (b ^ c))) + x9 + 568446438) | 0;
    a = ((a << 5) | (a >>> 27)) + b | 0;
    d = (d + (b ^ (c & (a ^ b))) + x14 - 1019803690) | 0;
    d = ((d << 9) | (d >>> 23)) + a | 0;
    c = (c + (a ^ (b & (d ^ a))) + x3 - 187363961) | 0;
    c = ((c << 14) | (c >>> 18)) + d | 0;
    b = (b + (d ^ (a & (c ^ d))) + x8 + 1163531501) | 0;
    b = ((b << 20) | (b >>> 12)) + c | 0;
    a = (a + (c ^ (d & (b ^ c))) + x13 - 1444681467) | 0;
    a = ((a << 5) | (a >>> 27)) + b | 0;
    d = (d + (b ^ (c & (a ^ b))) + x2 - 51403784) | 0;
    d = ((d << 9) | (d >>> 23)) + a | 0;
    c = (c + (a ^ (b & (d ^ a))) + x7 + 1735328473) | 0;
    c = ((c << 14) | (c >>> 18)) + d | 0;
    b = (b + (d ^ (a & (c ^ d))) + x12 - 1926607734) | 0;
    b = ((b << 20) | (b >>> 12)) + c | 0;
    a = (a + (b ^ c ^ d) + x5 - 378558) | 0;
    a = ((a << 4) | (a >>> 28)) + b | 0;
    d = (d + (a ^ b ^ c) + x8 - 2022574463) | 0;
    d = ((d << 11) | (d >>> 21)) + a | 0;
    c = (c + (d ^ a ^ b) + x11 + 1839030562) | 0;
    c = ((c << 16) | (c >>> 16)) + d | 0;
    b = (b + (c ^ d ^ a) + x14 - 35309556) | 0;
    b = ((b << 23) | (b >>> 9)) + c | 0;
    a = (a + (b ^ c ^ d) + x1 - 1530992060) | 0;
    a = ((a << 4) | (a >>> 28)) + b | 0;
    d = (d + (a ^ b ^ c) + x4 + 1272893353) | 0;
    d = ((d << 11) | (d >>> 21)) + a | 0;
    c = (c + (d ^ a ^ b) + x7 - 155497632) | 0;
    c = ((c << 16) | (c >>> 16)) + d | 0;
    b = (b + (c ^ d ^ a) + x10 - 1094730640) | 0;
    b = ((b << 23) | (b >>> 9)) + c | 0;
    a = (a + (b ^ c ^ d) + x13 + 681279174) | 0;
    a = ((a << 4) | (a >>> 28)) + b | 0;
    d = (d + (a ^ b ^ c) + x0 - 358537222) | 0;
    d = ((d << 11) | (d >>> 21)) + a | 0;
    c = (c + (d ^ a ^ b) + x3 - 722521979) | 0;
    c = ((c << 16) | (c >>> 16)) + d | 0;
    b = (b + (c ^ d ^ a) + x6 + 76029189) | 0;
    b = ((b << 23) | (b >>> 9)) + c | 0;
    a = (a + (b ^ c ^ d) + x9 - 640364487) | 0;
    a = ((a << 4) | (a >>> 28)) + b | 0;
    d = (d + (a ^ b ^ c) + x12 - 421815835) | 0;
    d = ((d << 11) | (d >>> 21)) + a | 0;
    c = (c + (d ^ a ^ b) + x15 + 530742520) | 0;
    c = ((c << 16) | (c >>> 16)) + d | 0;
    b = (b + (c ^ d ^ a) + x2 - 995338651) | 0;
    b = ((b << 23) | (b >>> 9)) + c | 0;
    a = (a + (c ^ (b | ~d)) + x0 - 198630844) | 0;
    a = ((a << 6) | (a >>> 26)) + b | 0;
    d = (d + (b ^ (a | ~c)) + x7 + 1126891415) | 0;
    d = ((d << 10) | (d >>> 22)) + a | 0;
    c = (c + (a ^ (d | ~b)) + x14 - 1416354905) | 0;
    c = ((c << 15) | (c >>> 17)) + d | 0;
    b = (b + (d ^ (c | ~a)) + x5 - 57434055) | 0;
    b = ((b << 21) | (b >>> 11)) + c | 0;
    a = (a + (c ^ (b | ~d)) + x12 + 1700485571) | 0;
    a = ((a << 6) | (a >>> 26)) + b | 0;
    d = (d + (b ^ (a | ~c)) + x3 - 1894986606) | 0;
    d = ((d << 10) | (d >>> 22)) + a | 0;
    c = (c + (a ^ (d | ~b)) + x10 - 1051523) | 0;
    c = ((c << 15) | (c >>> 17)) + d | 0;
    b = (b + (d ^ (c | ~a)) + x1 - 2054922799) | 0;
    b = ((b << 21) | (b >>> 11)) + c | 0;
    a = (a + (c ^ (b | ~d)) + x8 + 1873313359) | 0;
    a = ((a << 6) | (a >>> 26)) + b | 0;
    d = (d + (b ^ (a | ~c)) + x15 - 30611744) | 0;
    d = ((d << 10) | (d >>> 22)) + a | 0;
    c = (c + (a ^ (d | ~b)) + x6 - 1560198380) | 0;
    c = ((c << 15) | (c >>> 17)) + d | 0;
    b = (b + (d ^ (c | ~a)) + x13 + 1309151649) | 0;
    b = ((b << 21) | (b >>> 11)) + c | 0;
    a = (a + (c ^ (b | ~d)) + x4 - 145523070) | 0;
    a = ((a << 6) | (a >>> 26)) + b | 0;
    d = (d + (b ^ (a | ~c)) + x11 - 1120210379) | 0;
    d = ((d << 10) | (d >>> 22)) + a | 0;
    c = (c + (a ^ (d | ~b)) + x2 + 718787259) | 0;
    c = ((c << 15) | (c >>> 17)) + d | 0;
    b = (b + (d ^ (c | ~a)) + x9 - 343485551) | 0;
    b = ((b << 21) | (b >>> 11)) + c | 0;
    a = (a + aa) | 0;
    b = (b + bb) | 0;
    c = (c + cc) | 0;
    d = (d + dd) | 0;
  }
  state[0] = a;
  state[1] = b;
  state[2] = c;
  state[3] = d;
}

/** The MD5 of `bytes` (RFC 1321): 16 bytes. */
export function md5(bytes) {
  const input = digestInput(bytes);
  const size = input.length;
  const state = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
  const body = size - (size % 64); // the whole blocks; the rest is hashed with the padding
  const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
  if (littleEndian && input.byteOffset % 4 === 0) {
    // The bytes as they are, read as words in place: no copy.
    md5Blocks(state, new Uint32Array(input.buffer, input.byteOffset, body / 4), body / 4);
  } else {
    // An unaligned view (or a big-endian machine): 64 KiB at a time into aligned words.
    const chunk = new Uint32Array(16384);
    for (let start = 0; start < body; start += 65536) {
      const end = Math.min(start + 65536, body);
      for (let i = start, w = 0; i < end; i += 4, w++) {
        chunk[w] = input[i] | (input[i + 1] << 8) | (input[i + 2] << 16) | (input[i + 3] << 24);
      }
      md5Blocks(state, chunk, (end - start) / 4);
    }
  }
  // The last bytes, the 0x80 byte, zeros, and the length in bits as 64-bit little-endian.
  const rest = size - body;
  const tail = new Uint8Array(128);
  tail.set(input.subarray(body));
  tail[rest] = 0x80;
  const tailSize = rest < 56 ? 64 : 128;
  const bitsLow = (size % 0x20000000) * 8; // size * 8 mod 2^32, exact for any array length
  const bitsHigh = Math.floor(size / 0x20000000);
  const words = new Uint32Array(tailSize / 4);
  for (let i = 0; i < tailSize; i += 4) {
    words[i / 4] = tail[i] | (tail[i + 1] << 8) | (tail[i + 2] << 16) | (tail[i + 3] << 24);
  }
  words[tailSize / 4 - 2] = bitsLow;
  words[tailSize / 4 - 1] = bitsHigh;
  md5Blocks(state, words, tailSize / 4);
  const digest = new Uint8Array(16);
  for (let i = 0; i < 16; i++) digest[i] = state[i >> 2] >>> ((i & 3) * 8);
  return digest;
}

/**
 * The CRC32C (Castagnoli, reflected polynomial 0x82F63B78) slicing tables: 16 tables of 256,
 * table k giving the CRC of a byte followed by k zero bytes. Built once, on first use.
 */
export function crc32cTables() {
  if (crc32cTables.tables) return crc32cTables.tables;
  const tables = new Int32Array(16 * 256);
  for (let n = 0; n < 256; n++) {
    let crc = n;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    tables[n] = crc;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 16; k++) {
      const previous = tables[(k - 1) * 256 + n];
      tables[k * 256 + n] = (previous >>> 8) ^ tables[previous & 0xff];
    }
  }
  crc32cTables.tables = tables;
  return tables;
}

/**
 * The CRC32C of `bytes` (as x-amz-checksum-crc32c; "123456789" gives 0xE3069283): a uint32.
 * Slicing by 16: the bytes up to a 4-byte boundary one at a time, then 16 at a time read as
 * four little-endian words in place, then the rest one at a time.
 */
export function crc32c(bytes) {
  const input = digestInput(bytes);
  const t = crc32cTables();
  const size = input.length;
  let crc = -1;
  let i = 0;
  if (new Uint8Array(new Uint32Array([1]).buffer)[0] === 1) {
    // Little-endian (every browser's machine); a big-endian one takes the bytewise loop below.
    const lead = Math.min(size, (4 - (input.byteOffset % 4)) % 4);
    for (; i < lead; i++) crc = (crc >>> 8) ^ t[(crc ^ input[i]) & 0xff];
    const count = Math.floor((size - i) / 16) * 4;
    // (No view when there is none: a short view's end may not be on a 4-byte boundary.)
    const words = count ? new Int32Array(input.buffer, input.byteOffset + i, count) : new Int32Array(0);
    for (let w = 0; w < count; w += 4) {
      const a = crc ^ words[w];
      const b = words[w + 1];
      const c = words[w + 2];
      const d = words[w + 3];
      crc =
        t[3840 + (a & 0xff)] ^
        t[3584 + ((a >>> 8) & 0xff)] ^
        t[3328 + ((a >>> 16) & 0xff)] ^
        t[3072 + (a >>> 24)] ^
        t[2816 + (b & 0xff)] ^
        t[2560 + ((b >>> 8) & 0xff)] ^
        t[2304 + ((b >>> 16) & 0xff)] ^
        t[2048 + (b >>> 24)] ^
        t[1792 + (c & 0xff)] ^
        t[1536 + ((c >>> 8) & 0xff)] ^
        t[1280 + ((c >>> 16) & 0xff)] ^
        t[1024 + (c >>> 24)] ^
        t[768 + (d & 0xff)] ^
        t[512 + ((d >>> 8) & 0xff)] ^
        t[256 + ((d >>> 16) & 0xff)] ^
        t[d >>> 24];
    }
    i += count * 4;
  }
  for (; i < size; i++) crc = (crc >>> 8) ^ t[(crc ^ input[i]) & 0xff];
  return ~crc >>> 0;
}

/** Base64 of raw bytes. */
export function bytesToBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
  return btoa(text);
}

/**
 * The digest `algorithm` ("SHA256", "CRC32C" or "MD5", as the server names it) of `bytes`, as
 * S3 wants it: base64 of the raw digest (SHA-256: 44 characters, CRC32C: its 4 bytes
 * big-endian, 8 characters, MD5: 24 characters, as Content-MD5).
 */
export async function digestBase64(algorithm, bytes) {
  if (algorithm === "SHA256") {
    return bytesToBase64(new Uint8Array(await crypto.subtle.digest("SHA-256", digestInput(bytes))));
  }
  if (algorithm === "CRC32C") {
    const crc = crc32c(bytes);
    return bytesToBase64(new Uint8Array([crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff]));
  }
  if (algorithm === "MD5") return bytesToBase64(md5(bytes));
  throw new Error(`unknown checksum algorithm ${JSON.stringify(algorithm)}: expected "SHA256", "CRC32C" or "MD5"`);
}

/** The functions above as source text, for a worker started from a blob: URL. */
export const DIGEST_SOURCE = [digestInput, md5Blocks, md5, crc32cTables, crc32c, bytesToBase64, digestBase64]
  .map(String)
  .join("\n\n");
