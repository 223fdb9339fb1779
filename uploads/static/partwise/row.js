// One file being uploaded in this tab: its row in "In progress", driven by the handle's events.
// Figures on the row never move backwards (bytes S3 holds are not forgotten during a retry),
// speed and ETA are hidden while the connection is lost, and notes stay until dismissed.

import { confirmAction } from "./dialog.js";
import { addMessage } from "./messages.js";
import { describeError, describeOutage, describeSpeed, formatBytes } from "./words.js";

export const LIVE = ["idle", "preparing", "uploading", "paused", "completing"];
const SENDING = ["preparing", "uploading", "completing"];
const WORDS = {
  idle: "Waiting…",
  preparing: "Checking the file…",
  uploading: "Uploading…",
  paused: "Paused.",
  completing: "Putting the parts together…",
  completed: "Uploaded.",
  cancelled: "Cancelled.",
  failed: "Failed.",
};

// An error worth "Connection lost": the network or the server failed and the client tries
// again (the client's own rule for its `connection` event). An expired URL, a 429 or a 408 is
// retried too, but the connection works there.
function isOutage(error) {
  return ["network_error", "stalled"].includes(error?.code) || error?.status >= 500;
}

/**
 * A row for `handle` (uploading `file`), added at the top of the queue.
 * @param {object} hooks
 * @param {(entry) => void} hooks.changed  the row's figures changed (redraw the summary)
 * @param {(entry, state) => void} hooks.stateChanged
 * @param {(entry) => void} hooks.dismissed  the person removed the ended row
 * @param {(text: string) => void} hooks.announce  words for screen readers
 */
export function addRow(file, handle, hooks) {
  const row = document.getElementById("file-row").content.firstElementChild.cloneNode(true);
  const name = row.querySelector(".name");
  name.textContent = file.name;
  name.id = `file-${crypto.randomUUID()}`;
  row.querySelector(".size").textContent = formatBytes(file.size);
  row.querySelector("progress").setAttribute("aria-labelledby", name.id);
  row.dataset.filename = file.name;
  for (const button of row.querySelectorAll("button")) {
    button.setAttribute("aria-label", `${button.dataset.label ?? button.textContent} ${file.name}`);
  }
  document.getElementById("queue").prepend(row);

  const entry = {
    row,
    file,
    handle,
    /** The most bytes shown so far: what the row and the summary display. */
    shownBytes: 0,
    /** { attempt, retryAt } while the connection is lost, else null. */
    outage: null,
    /** Other live sessions sending this upload (the server's other_sessions). */
    others: 0,
    partsDone: 0,
    resumed: false,
    note: null,
    stalled: false,
    live: () => LIVE.includes(handle.state),
    render: () => render(entry),
  };
  const messages = row.querySelector(".messages");
  entry.say = (text) => {
    addMessage(messages, text, { label: `Dismiss this message about ${file.name}` });
    hooks.announce(`${file.name}: ${text}`);
  };
  const changed = () => hooks.changed(entry);
  const show = (action, visible) => {
    row.querySelector(`[data-action="${action}"]`).hidden = !visible;
  };

  handle.on("state", (state) => {
    row.dataset.state = state;
    if (handle.upload) row.dataset.uploadId = handle.upload.id;
    show("pause", state === "uploading" || state === "preparing");
    show("resume", state === "paused");
    show("cancel", ["preparing", "uploading", "paused"].includes(state));
    show("dismiss", ["completed", "failed", "cancelled"].includes(state));
    if (!SENDING.includes(state)) {
      entry.outage = null;
      retries.clear();
    }
    if (["completed", "cancelled", "failed", "paused"].includes(state)) {
      hooks.announce(`${file.name}: ${WORDS[state]}`);
    }
    hooks.stateChanged(entry, state);
    render(entry);
    changed();
  });
  handle.on("resume", (previous) => {
    entry.resumed = true;
    row.dataset.resumed = "true";
    entry.say(
      `Continuing an earlier upload: ${previous.partsUploaded} of ${previous.partCount} parts ` +
        `(${formatBytes(previous.bytesUploaded)}) were already in storage.`,
    );
    entry.note = () =>
      `It continued an earlier upload and sent ${formatBytes(handle.progress().bytesSent)} of ${formatBytes(file.size)}.`;
  });
  handle.on("mismatch", () => {
    row.dataset.mismatch = "true";
    entry.say("This is not the file of the unfinished upload with the same name, so it is uploaded separately.");
  });
  handle.on("progress", () => {
    if (handle.upload) row.dataset.uploadId = handle.upload.id;
    changed();
  });
  handle.on("part", () => {
    entry.partsDone++;
    row.dataset.partsDone = String(entry.partsDone);
    entry.outage = null; // S3 took a part: the connection works
    retries.clear();
    changed();
  });
  // Several parts retry at once, each on its own schedule: the row shows the furthest attempt
  // and the soonest next try, so the countdown only ever counts down.
  const retries = new Map(); // part number (or "api") -> { attempt, retryAt }
  handle.on("retry", ({ number, attempt, delay, error }) => {
    if (!isOutage(error)) return;
    retries.set(number ?? "api", { attempt, retryAt: Date.now() + delay });
    const now = Date.now();
    const waits = [...retries.values()];
    const upcoming = waits.map((wait) => wait.retryAt).filter((at) => at > now);
    entry.outage = {
      attempt: Math.max(...waits.map((wait) => wait.attempt)),
      retryAt: upcoming.length ? Math.min(...upcoming) : now,
    };
    changed();
  });
  handle.on("connection", ({ state, attempt, retryAt }) => {
    // The `retry` event that came just before already set the soonest retry of all parts.
    if (state === "lost") entry.outage ??= { attempt, retryAt };
    else {
      entry.outage = null;
      retries.clear();
    }
    changed();
  });
  handle.on("sessions", ({ others }) => {
    entry.others = others;
    changed();
  });
  handle.on("error", (error) => {
    row.dataset.errorCode = error.code;
    const box = row.querySelector(".error");
    // A page whose origin the bucket's CORS refuses (the server said so, #cors-blocked): the
    // browser reports that only as a network error, so name the real cause instead.
    const cors = document.getElementById("cors-blocked");
    const network = error.code === "network_error" || error.code === "stalled";
    box.textContent = cors && network ? cors.textContent.replace(/\s+/g, " ").trim() : describeError(error);
    box.hidden = false;
  });

  row.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    const action = button?.dataset.action;
    if (action === "pause") handle.pause();
    if (action === "resume") handle.resume();
    if (action === "cancel") {
      const lost = entry.shownBytes;
      const sure = await confirmAction({
        title: `Cancel the upload of ${file.name}?`,
        text: lost
          ? `The ${formatBytes(lost)} of ${formatBytes(file.size)} already uploaded will be deleted from storage. This cannot be undone.`
          : "Nothing of it is in storage yet; the upload is cancelled.",
        keep: "Keep uploading",
        confirm: "Cancel and delete the parts",
      });
      if (!sure) return;
      button.disabled = true;
      await handle.cancel();
      button.disabled = false;
    }
    if (action === "dismiss") {
      row.remove();
      hooks.dismissed(entry);
    }
    // Keep keyboard focus on the row's visible control after a button hides itself.
    if (action && button.hidden) row.querySelector(".actions button:not([hidden])")?.focus();
  });
  return entry;
}

/** Draw the row's figures from the handle (read now, never from an older event). */
function render(entry) {
  const { row, handle } = entry;
  const progress = handle.progress();
  const state = handle.state;
  const total = progress.bytesTotal;
  if (state === "completed") entry.shownBytes = total;
  else entry.shownBytes = Math.min(total, Math.max(entry.shownBytes, progress.bytesUploaded));
  entry.stalled = SENDING.includes(state) && (Boolean(progress.stalled) || entry.outage !== null);

  const percent = total ? (100 * entry.shownBytes) / total : state === "completed" ? 100 : 0;
  const bar = row.querySelector("progress");
  bar.value = percent;
  const speed = state === "uploading" ? describeSpeed({ ...progress, stalled: entry.stalled, bytesUploaded: entry.shownBytes }) : "";
  const text = `${Math.floor(percent)}%`;
  bar.setAttribute("aria-valuetext", speed ? `${text}, ${speed}` : text);
  row.dataset.bytesSent = progress.bytesSent;
  row.dataset.bytesShown = entry.shownBytes;
  row.dataset.stalled = String(entry.stalled);

  let status = WORDS[state] ?? "";
  if (state === "uploading") {
    const figures = `${formatBytes(entry.shownBytes)} of ${formatBytes(total)}`;
    status = `${entry.resumed ? "Resumed · " : ""}${figures}${speed ? ` · ${speed}` : ""}`;
  } else if (state === "completed" && entry.note) {
    status = `${status} ${entry.note()}`;
  }
  const line = row.querySelector(".status");
  if (line.textContent !== status) line.textContent = status;

  const connection = row.querySelector(".connection");
  let outage = "";
  if (entry.stalled && entry.outage?.retryAt != null) outage = describeOutage(entry.outage);
  else if (entry.stalled && navigator.onLine === false) outage = "Connection lost — waiting for the network";
  else if (entry.stalled) outage = "Connection lost — retrying";
  if (connection.textContent !== outage) connection.textContent = outage;
  connection.hidden = !outage;

  const sessions = row.querySelector(".sessions");
  const others = entry.live() ? entry.others : 0;
  sessions.hidden = others <= 0;
  sessions.textContent =
    others === 1 ? "Also uploading in another window." : others > 1 ? `Also uploading in ${others} other windows.` : "";
}
