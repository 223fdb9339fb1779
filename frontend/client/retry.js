/**
 * The one retry policy of the client, used by API calls and part PUTs alike: which answers are
 * worth asking again (`isRetryableStatus`, `isRetryable`), how long to wait (`backoffDelay`),
 * and the loop that does it (`withRetries`). tests/vectors/retry.json holds the same rules for
 * the Python client; frontend/vectors.test.js checks this module against it.
 */

/** Base delays (ms) before each retry; the length is the number of retries. */
export const RETRY_DELAYS = Object.freeze([500, 1000, 2000, 4000, 8000, 16000, 30000]);

/**
 * Statuses worth asking again: no answer at all (0), the server or a proxy failed (5xx), or it
 * asked us to come back later (408, 429). Every other 4xx is a final answer.
 */
export function isRetryableStatus(status) {
  return status === 0 || status >= 500 || status === 408 || status === 429;
}

/** Whether a failed attempt may be made again: the error says so (UploadError.retryable). */
export function isRetryable(error) {
  return Boolean(error?.retryable);
}

/**
 * Whether a failure means the connection (network, server or storage) is down rather than a
 * refusal: those are the failures the handle reports as "connection lost".
 */
export function isConnectionFailure(error) {
  return ["network_error", "stalled"].includes(error?.code) || error?.status >= 500;
}

/** Exponential backoff with "equal jitter": between half and all of retryDelays[attempt]. */
export function backoffDelay(retryDelays, attempt, random = Math.random) {
  const base = retryDelays[Math.min(attempt, retryDelays.length - 1)] ?? 0;
  return Math.round(base / 2 + (random() * base) / 2);
}

/** Wait `ms` milliseconds, rejecting with signal.reason when the signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Call `task(attempt)` until it succeeds, fails with an error that is not retryable, or the
 * retries (options.retryDelays) run out. Between attempts it waits the backoff delay with
 * options.sleep, cut short when `hooks.wake` calls back (the network is back).
 * hooks: { beforeRetry(error), onRetry({attempt, delay, error}) called BEFORE waiting,
 * onSuccess(), wake(callback) -> unsubscribe }.
 */
export async function withRetries(options, signal, task, hooks = {}) {
  for (let attempt = 0; ; attempt++) {
    signal?.throwIfAborted();
    let result;
    try {
      result = await task(attempt);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!isRetryable(error) || attempt >= options.retryDelays.length) throw error;
      const delay = backoffDelay(options.retryDelays, attempt, options.random);
      await hooks.beforeRetry?.(error);
      hooks.onRetry?.({ attempt: attempt + 1, delay, error });
      await wait(options, delay, signal, hooks.wake);
      continue;
    }
    hooks.onSuccess?.();
    return result;
  }
}

/** options.sleep(delay), ended early (without an error) when `wake` calls back first. */
async function wait(options, delay, signal, wake) {
  if (!wake) return options.sleep(delay, signal);
  signal?.throwIfAborted();
  const cut = new AbortController();
  const forward = () => cut.abort(signal.reason);
  signal?.addEventListener("abort", forward, { once: true });
  const unsubscribe = wake(() => cut.abort(WOKEN));
  try {
    await options.sleep(delay, cut.signal);
  } catch (error) {
    if (error !== WOKEN) throw error;
  } finally {
    signal?.removeEventListener("abort", forward);
    unsubscribe?.();
  }
}

const WOKEN = Symbol("woken");
