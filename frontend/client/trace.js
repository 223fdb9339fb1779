/**
 * Performance marks for the bench's time breakdown, as measures in the page's performance
 * timeline (performance.getEntriesByType("measure")): `partwise:read` (a part's bytes into
 * memory), `partwise:hash` (its SHA-256), `partwise:put` (one PUT attempt), `partwise:create`
 * and `partwise:sign` (those calls), `partwise:sign-wait` (a worker idle, waiting for URLs),
 * `partwise:report-wait` (the last reports before completing). Where the
 * User Timing API is missing this does nothing; it never throws into the upload.
 */
let counter = 0;
const perf = globalThis.performance;
const enabled = typeof perf?.mark === "function" && typeof perf?.measure === "function";

/** Start a span named `partwise:<name>`; call the returned function to end it. */
export function span(name) {
  if (!enabled) return () => {};
  const start = `partwise:${name}:${++counter}`;
  try {
    perf.mark(start);
  } catch {
    return () => {};
  }
  return () => {
    try {
      perf.measure(`partwise:${name}`, start);
      perf.clearMarks(start);
    } catch {
      // A cleared timeline (the page called clearMarks) only loses this one span.
    }
  };
}

/** Run `task()` inside a span. */
export async function traced(name, task) {
  const end = span(name);
  try {
    return await task();
  } finally {
    end();
  }
}
