// The page's words: figures rounded for people, and errors in plain language. Pure functions,
// no DOM: page.js and its parts import them, and the e2e tests call them in the browser.

const UNITS = ["kB", "MB", "GB", "TB", "PB"];

/** Decimal units, as browsers and file managers show sizes: "1 byte", "999 bytes", "9.5 MB". */
export function formatBytes(bytes) {
  if (bytes == null || !Number.isFinite(bytes)) return "";
  const whole = Math.round(bytes);
  if (Math.abs(whole) < 1000) {
    return `${whole} ${whole === 1 ? "byte" : "bytes"}`;
  }
  let value = bytes / 1000;
  let unit = 0;
  // Round first, so that 999,999 bytes reads "1.0 MB" rather than "1000 kB".
  while (Math.abs(roundFor(value)) >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${trim(value)} ${UNITS[unit]}`;
}

/** A speed: "9.5 B/s", "950 B/s", "2.1 MB/s"; never more than three significant digits. */
export function formatRate(bytesPerSecond) {
  if (bytesPerSecond == null || !Number.isFinite(bytesPerSecond)) return "";
  if (Math.abs(roundFor(bytesPerSecond)) < 1000) return `${trim(bytesPerSecond)} B/s`;
  return `${formatBytes(bytesPerSecond)}/s`;
}

function roundFor(value) {
  return Math.abs(value) < 10 ? Math.round(value * 10) / 10 : Math.round(value);
}

function trim(value) {
  const rounded = roundFor(value);
  return Math.abs(rounded) < 10 ? rounded.toFixed(1) : String(rounded);
}

/** A duration: "less than a second", "33 s", "4 min", "1.5 h". */
export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return "less than a second";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Time left: "less than a second left", "about 33 s left" (never "about less than…"). */
export function formatEta(seconds) {
  if (seconds == null || !Number.isFinite(seconds) || seconds < 0) return "";
  return seconds < 1 ? "less than a second left" : `about ${formatDuration(seconds)} left`;
}

/** "2.1 MB/s, about 33 s left" while the bytes move; "" while stalled or not measured. */
export function describeSpeed({ speed, eta, stalled, bytesUploaded, bytesTotal }) {
  if (stalled || !speed) return "";
  const parts = [formatRate(speed)];
  if (bytesUploaded < bytesTotal) parts.push(formatEta(eta ?? (bytesTotal - bytesUploaded) / speed));
  return parts.filter(Boolean).join(", ");
}

/** "Connection lost — retrying in 4 s (attempt 2)"; "retrying now" once the wait is over. */
export function describeOutage({ attempt, retryAt }, now = Date.now()) {
  const seconds = retryAt == null ? 0 : Math.ceil((retryAt - now) / 1000);
  const when = seconds > 0 ? `retrying in ${seconds} s` : "retrying now";
  return `Connection lost — ${when}${attempt ? ` (attempt ${attempt})` : ""}`;
}

/** An error in plain words: what happened and what to do. */
export function describeError(error) {
  switch (error?.code) {
    case "network_error":
    case "stalled":
      return "The connection kept failing, even after several retries. Check your network, then pick the file again to continue.";
    case "not_authenticated":
    case "authentication_failed":
    case "csrf_failed":
      return "You are signed out. Sign in again, then pick the file again to continue.";
    case "etag_not_exposed":
      return `${error.message}`;
    case "checksum_mismatch":
    case "part_refused":
      return `${error.message} Pick the file again to try once more.`;
    case "upload_gone":
    case "upload_not_resumable":
      return "This upload was cancelled or expired on the server. Pick the file again to start a new upload.";
    case "file_mismatch":
      return error.message;
    case "storage_unavailable":
    case "storage_failed":
      return "The storage server is not answering properly. Try again in a few minutes.";
    case "upload_too_large":
    case "type_not_allowed":
    case "invalid_filename":
      return error.message;
    default:
      return error?.message || "Something went wrong.";
  }
}
