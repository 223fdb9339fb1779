/**
 * The JSON API of Partwise: one call (`apiCall`), the same call with the retry policy
 * (`apiRequest`), and the calls outside an upload (list, detail, abort). Wire names are
 * snake_case; `camelize` is the one translation of what this client hands out.
 */
import { UploadError } from "./errors.js";
import { resolveOptions } from "./options.js";
import { isRetryableStatus, withRetries } from "./retry.js";

/** snake_case keys to camelCase, recursively: the one translation of the wire format. */
export function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key.replace(/_([a-z0-9])/g, (_, char) => char.toUpperCase()),
      camelize(item),
    ]),
  );
}

function csrfToken(options) {
  if (typeof options.csrfToken === "function") return options.csrfToken();
  if (typeof options.csrfToken === "string") return options.csrfToken;
  if (typeof document === "undefined") return "";
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

function isAbortError(error, signal) {
  return Boolean(signal?.aborted) || error?.name === "AbortError";
}

/** One JSON call to the API. Throws UploadError (retryable for network errors, 5xx, 408, 429). */
export async function apiCall(options, method, url, body, signal) {
  const headers = { Accept: "application/json", ...options.headers };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") {
    const token = csrfToken(options);
    if (token) headers["X-CSRFToken"] = token;
  }
  let response;
  let text;
  try {
    response = await options.fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
    text = await response.text();
  } catch (error) {
    if (isAbortError(error, signal)) throw signal?.reason ?? error;
    throw new UploadError("The Partwise server could not be reached.", {
      code: "network_error",
      retryable: isRetryableStatus(0),
      cause: error,
    });
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (response.ok) return data;
  throw new UploadError(data?.detail || `The Partwise server answered ${response.status}.`, {
    code: data?.code || `http_${response.status}`,
    status: response.status,
    response: camelize(data),
    retryable: isRetryableStatus(response.status),
  });
}

/** An API call under the retry policy. `path` is relative to the endpoint (or a full URL). */
export function apiRequest(options, signal, method, path, body, hooks) {
  const url = /^https?:/.test(path) ? path : `${options.endpoint}${path}`;
  return withRetries(options, signal, () => apiCall(options, method, url, body, signal), hooks);
}

/**
 * POST …/complete/, asking again while another call is completing the upload. A 409 "completed"
 * is the answer of a completion that someone else (another session, or our own lost answer)
 * already made: the completed upload is fetched and returned as the result.
 */
export async function completeUpload(options, signal, id, hooks) {
  const url = `${options.endpoint}${id}/complete/`;
  const attempt = async () => {
    try {
      return await apiCall(options, "POST", url, undefined, signal);
    } catch (error) {
      // 409 "completing": another call is completing it, often our own whose answer was lost;
      // the server asks to try again shortly, and then answers the completed upload.
      if (error?.status === 409 && error.response?.status === "completing") error.retryable = true;
      throw error;
    }
  };
  try {
    return await withRetries(options, signal, attempt, hooks);
  } catch (error) {
    if (error?.status !== 409 || error.code === "part_missing") throw error;
    // Another session may have completed it first: that is this upload's success too.
    const detail = await apiRequest(options, signal, "GET", `${id}/`, undefined, hooks);
    if (detail?.status !== "completed") throw error;
    return detail;
  }
}

// --- the API outside an upload ---------------------------------------------------------------
/** One page of the caller's uploads: { uploads, next } (next: the cursor URL or null). */
export async function listUploads(query = {}, options = {}) {
  const resolved = resolveOptions(options);
  const params = new URLSearchParams(Object.entries(query).filter(([, value]) => value != null));
  const path = query.next || ([...params].length ? `?${params}` : "");
  const data = await apiRequest(resolved, options.signal, "GET", path);
  return { uploads: camelize(data.results), next: data.next };
}

/** Every unfinished upload of the caller, newest first (all pages). */
export async function listUnfinishedUploads(options = {}) {
  const uploads = [];
  let page = await listUploads({ status: "uploading" }, options);
  uploads.push(...page.uploads);
  while (page.next) {
    page = await listUploads({ next: page.next }, options);
    uploads.push(...page.uploads);
  }
  return uploads;
}

/** One upload with its parts, reconciled with S3 by the server. options.session: the caller's. */
export async function getUpload(id, options = {}) {
  const query = options.session ? `?session=${encodeURIComponent(options.session)}` : "";
  return camelize(await apiRequest(resolveOptions(options), options.signal, "GET", `${id}/${query}`, undefined, options.hooks));
}

/** Abort an upload (and its S3 multipart upload). Repeating it is harmless. */
export async function abortUpload(id, options = {}) {
  return camelize(await apiRequest(resolveOptions(options), options.signal, "DELETE", `${id}/`));
}
