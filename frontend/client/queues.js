/**
 * The small concurrency tools of the part loop: how big sign and report batches may be given
 * the server's limits, a counting semaphore for buffers, and the report queue that batches
 * ETags. No network of its own: the queue is handed the function that sends a batch.
 */

/** Most parts a client puts in one report, whatever the server allows (DESIGN.md: ≤ 1 per 64). */
export const REPORT_BATCH_CAP = 64;

/**
 * Sign and report batch sizes, and the report interval, for the server's `limits` (camelCase
 * or snake_case keys): sign = min(signBatchSize, signBatchMax), report = min(reportBatchSize,
 * 64, reportBatchMax), reportInterval = min(reportInterval, sessionIdle / 2 s) so that a
 * session with parts to report never looks silent to the server (which would hand its leased
 * parts to another). A missing limit does not bound (tests/vectors/batches.json).
 */
export function batchSizes(limits = {}, { signBatchSize, reportBatchSize, reportInterval }) {
  const signMax = limits?.signBatchMax ?? limits?.sign_batch_max ?? Infinity;
  const reportMax = limits?.reportBatchMax ?? limits?.report_batch_max ?? Infinity;
  const idle = limits?.sessionIdle ?? limits?.session_idle;
  return {
    sign: Math.max(1, Math.min(signBatchSize, signMax)),
    report: Math.max(1, Math.min(reportBatchSize, REPORT_BATCH_CAP, reportMax)),
    reportInterval: idle ? Math.min(reportInterval, (idle * 1000) / 2) : reportInterval,
  };
}

/** A counting semaphore: acquire() waits for a free slot, release() frees one. */
export class Slots {
  constructor(limit) {
    this.limit = limit;
    this.used = 0;
    this._waiting = [];
  }

  async acquire(signal) {
    while (this.used >= this.limit) {
      signal?.throwIfAborted();
      await new Promise((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        this._waiting.push(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
    this.used++;
  }

  release() {
    this.used = Math.max(0, this.used - 1);
    this._waiting.shift()?.();
  }
}

/**
 * ETags waiting to be reported: sent when `batchSize()` are waiting or `interval()` ms after the
 * first waiting one, one report in flight at a time, and all of them on `drain()`. A part S3
 * holds but not yet reported is not lost if the run stops: the server reconciles with ListParts.
 */
export class ReportQueue {
  constructor({ send, batchSize, interval, onError }) {
    this._send = send;
    this._batchSize = batchSize;
    this._interval = interval;
    this._onError = onError;
    this.waiting = [];
    this._inFlight = null;
    this._timer = null;
  }

  push(part) {
    this.waiting.push(part);
    this.flush();
  }

  flush(all = false) {
    if (this._inFlight || !this.waiting.length) return;
    const size = this._batchSize();
    if (!all && this.waiting.length < size) {
      this._timer ??= setTimeout(() => {
        this._timer = null;
        this.flush(true);
      }, this._interval());
      return;
    }
    this.stopTimer();
    const batch = this.waiting.splice(0, size);
    this._inFlight = this._send(batch)
      .then(() => {
        this._inFlight = null;
        this.flush(all);
      })
      .catch((error) => {
        this._inFlight = null;
        this._onError(error);
      });
  }

  /** Send everything waiting; resolves when nothing is waiting or in flight (or `signal` aborts). */
  async drain(signal) {
    this.flush(true);
    while ((this._inFlight || this.waiting.length) && !signal?.aborted) {
      await this._inFlight;
      this.flush(true);
    }
  }

  /** Take what is waiting (for a best-effort report after a pause). */
  takeAll() {
    this.stopTimer();
    return this.waiting.splice(0);
  }

  stopTimer() {
    clearTimeout(this._timer);
    this._timer = null;
  }
}
