/**
 * The client's one error type and the fixed messages shared by its modules.
 * No I/O here: every other module imports it, it imports nothing.
 */

/** The one error type. `code` is stable (the API's own codes, or the client's below). */
export class UploadError extends Error {
  constructor(message, { code = "error", status = 0, response = null, retryable = false, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "UploadError";
    this.code = code;
    this.status = status;
    this.response = response;
    this.retryable = retryable;
  }
}

export const PAUSED = () => new UploadError("The upload is paused.", { code: "paused" });
export const CANCELLED = () => new UploadError("The upload was cancelled.", { code: "cancelled" });

export const ETAG_HELP =
  "The storage server accepted the part but the browser could not read its ETag. " +
  "Fix the bucket's CORS rule: it must expose the ETag header (ExposeHeaders: [\"ETag\"]), " +
  "e.g. with `python manage.py setup_storage`.";
