// The upload page: DOM wiring only. It uses client.js exactly as an app developer would; the
// rows (row.js), the server's lists (lists.js), kept file handles (filehandles.js), the
// confirmation (dialog.js) and the words (words.js) are its parts.
import { upload } from "./client.js";
import * as fileHandles from "./filehandles.js";
import { createLists } from "./lists.js";
import { addMessage } from "./messages.js";
import { addRow } from "./row.js";
import { formatBytes, formatEta, formatRate } from "./words.js";

export { describeError, formatBytes, formatDuration, formatEta, formatRate } from "./words.js";

/**
 * This tab's upload session, kept across reloads (sessionStorage lives as long as the tab).
 * The server hands the parts a live session signed to no one else for ~30 s; after a reload
 * the same session continues at once instead of waiting for its own old leases to lapse.
 */
function tabSession() {
  const name = "partwise-session";
  try {
    let id = sessionStorage.getItem(name);
    if (!/^[A-Za-z0-9_-]{8,64}$/.test(id ?? "")) {
      id = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
      sessionStorage.setItem(name, id);
    }
    return id;
  } catch {
    return undefined; // storage refused (privacy settings): the client picks one per upload
  }
}

const app = document.getElementById("app");
const OPTIONS = { endpoint: app.dataset.endpoint, session: tabSession() };
const $ = (id) => document.getElementById(id);
const entries = new Set(); // one per row in "In progress"

function announce(text) {
  $("announcer").textContent = text;
}

/** A page-level message that stays until dismissed (and is read out). */
function say(text) {
  addMessage($("messages"), text);
  announce(text);
}

const lists = createLists({
  options: OPTIONS,
  isLive: (id) => [...entries].some((entry) => entry.live() && entry.handle.upload?.id === id),
  resume: (file, uploadId, fileHandle) => startUpload(file, { uploadId }, fileHandle),
  say,
});

// --- starting uploads ------------------------------------------------------------------------
/** The live row already sending this file (or this upload), if any. */
function liveEntryFor(file, uploadId) {
  for (const entry of entries) {
    if (!entry.live()) continue;
    if (uploadId && entry.handle.upload?.id === uploadId) return entry;
    const other = entry.file;
    if (other.name === file.name && other.size === file.size && other.lastModified === file.lastModified) {
      return entry;
    }
  }
  return null;
}

/**
 * Upload `file` (continuing `extra.uploadId` when given). `fileHandle`, where the browser gave
 * one, is kept with the upload so that a later visit can continue without a file dialog.
 */
function startUpload(file, extra = {}, fileHandle = null) {
  // The same file picked twice in one tab is one upload: a second handle would send the same
  // parts and fail when the first completes.
  const already = liveEntryFor(file, extra.uploadId);
  if (already) {
    already.say(
      already.handle.state === "paused"
        ? "This file is already here, paused: press Resume to continue it (it was not started a second time)."
        : "This file is already uploading here, so it was not started a second time.",
    );
    already.row.scrollIntoView?.({ block: "nearest" });
    return already.handle;
  }
  const handle = upload(file, { ...OPTIONS, ...extra });
  const entry = addRow(file, handle, {
    changed: scheduleRender,
    stateChanged,
    dismissed: (ended) => {
      entries.delete(ended);
      $("queue-section").hidden = entries.size === 0;
      render();
      $("file-input").focus();
    },
    announce,
  });
  entry.fileHandle = fileHandle;
  entries.add(entry);
  $("queue-section").hidden = false;
  render();
  return handle;
}

function stateChanged(entry, state) {
  const id = entry.handle.upload?.id;
  if (id && entry.fileHandle && !entry.kept && entry.live()) {
    entry.kept = true;
    lists.keep(id, entry.fileHandle, entry.file);
  }
  if (id && ["completed", "cancelled"].includes(state)) lists.drop(id);
  if (["completed", "cancelled", "failed"].includes(state)) lists.refresh();
  else lists.renderUnfinished(); // an upload this tab now sends leaves "Unfinished" at once
}

function startFiles(files) {
  for (const file of files) startUpload(file);
}

/** Upload the files behind File System Access handles (the picker, a drop, a test's OPFS). */
async function startHandles(handles) {
  for (const handle of handles) {
    if (handle?.kind !== "file") continue;
    startUpload(await handle.getFile(), {}, handle);
  }
}

// --- the summary, at most once per frame -----------------------------------------------------
let frame = 0;
function scheduleRender() {
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

// While a connection is lost, the "retrying in N s" countdown moves on its own.
let ticker = 0;
function tick() {
  const waiting = [...entries].some((entry) => entry.outage);
  if (waiting && !ticker) ticker = setInterval(render, 1000);
  if (!waiting && ticker) {
    clearInterval(ticker);
    ticker = 0;
  }
}

function render() {
  let done = 0;
  let total = 0;
  let speed = 0;
  let active = 0;
  let counted = 0;
  let stalled = false;
  for (const entry of entries) {
    entry.render();
    const state = entry.handle.state;
    if (["cancelled", "failed"].includes(state)) continue;
    counted++;
    done += entry.shownBytes;
    total += entry.file.size;
    stalled ||= entry.stalled;
    if (state === "uploading" && !entry.stalled) {
      speed += entry.handle.progress().speed ?? 0;
      active++;
    }
  }
  tick();
  const overall = $("overall-progress");
  const percent = total ? (100 * done) / total : counted ? 100 : 0;
  overall.value = percent;
  const figures = [`${formatBytes(done)} of ${formatBytes(total)}`];
  const extra = [];
  if (stalled) extra.push("connection lost");
  else if (active && speed) extra.push(formatRate(speed), formatEta((total - done) / speed));
  const summary = counted
    ? `${counted} ${counted === 1 ? "file" : "files"}: ${[...figures, ...extra].join(", ")}`
    : "Nothing is uploading.";
  overall.setAttribute("aria-valuetext", [`${Math.floor(percent)}%`, ...extra].join(", "));
  $("overall-text").textContent = summary;
}

// --- wiring ----------------------------------------------------------------------------------
const input = $("file-input");
input.addEventListener("change", () => {
  startFiles([...input.files]);
  input.value = "";
});
// Where the browser hands out file handles, its picker replaces the input's dialog, so that
// the page can keep the handle and continue after a reload without asking for the file again.
if (fileHandles.pickerSupported()) {
  input.addEventListener("click", async (event) => {
    event.preventDefault();
    startHandles(await fileHandles.pickHandles());
  });
}

const dropzone = $("dropzone");
for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("over");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropzone.addEventListener(type, () => dropzone.classList.remove("over"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  const handles = fileHandles.handlesOfDrop(event); // read now: the items die with the event
  const files = [...(event.dataTransfer?.files ?? [])];
  if (handles) {
    Promise.all(handles)
      .then(startHandles)
      .catch(() => startFiles(files));
  } else if (files.length) {
    startFiles(files);
  }
});
// A file dropped next to the zone must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

// The browser knows first when the network is gone; the client's retries say when it is back.
window.addEventListener("offline", () => {
  for (const entry of entries) {
    if (entry.live() && entry.handle.state !== "paused") entry.outage ??= { attempt: 0, retryAt: null };
  }
  render();
});
window.addEventListener("online", () => {
  for (const entry of entries) {
    if (entry.outage?.retryAt == null) entry.outage = null;
  }
  render();
});

window.addEventListener("beforeunload", (event) => {
  const busy = [...entries].some((entry) => ["preparing", "uploading", "completing"].includes(entry.handle.state));
  if (busy) event.preventDefault();
});

/**
 * The page's entry points for scripts: `addHandle(fileHandle)` uploads a File System Access
 * file handle exactly as one from the picker or a drop (the e2e tests hand it one from the
 * origin-private file system, which needs no permission prompt).
 */
window.partwisePage = {
  addHandle: (fileHandle) => startHandles([fileHandle]),
};

lists.refresh();
app.dataset.ready = "true";
