// The upload page: DOM wiring only. It uses client.js exactly as an app developer would.
import {
  abortUpload,
  listUnfinishedUploads,
  listUploads,
  upload,
} from "./client.js";

const app = document.getElementById("app");
const OPTIONS = { endpoint: app.dataset.endpoint };
const $ = (id) => document.getElementById(id);
const rows = new Map(); // row element -> { handle, file, progress }

// --- words -----------------------------------------------------------------------------------
const UNITS = ["bytes", "kB", "MB", "GB", "TB"];

export function formatBytes(bytes) {
  if (bytes == null) return "";
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} ${value === 1 ? "byte" : "bytes"}` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return "less than a second";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function describeSpeed(progress) {
  const parts = [];
  if (progress.speed) parts.push(`${formatBytes(progress.speed)}/s`);
  if (progress.eta != null && progress.bytesUploaded < progress.bytesTotal && progress.speed) {
    parts.push(`about ${formatDuration(progress.eta)} left`);
  }
  return parts.join(", ");
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

function announce(text) {
  $("announcer").textContent = text;
}

// --- picking files ---------------------------------------------------------------------------
function startUploads(files, extra = {}) {
  for (const file of files) startUpload(file, extra);
}

function startUpload(file, extra = {}) {
  const row = $("file-row").content.firstElementChild.cloneNode(true);
  const name = row.querySelector(".name");
  name.textContent = file.name;
  name.id = `file-${crypto.randomUUID()}`;
  row.querySelector(".size").textContent = formatBytes(file.size);
  const bar = row.querySelector("progress");
  bar.setAttribute("aria-labelledby", name.id);
  row.dataset.filename = file.name;
  for (const button of row.querySelectorAll("button")) {
    button.setAttribute("aria-label", `${button.textContent} ${file.name}`);
  }
  $("queue").prepend(row);
  $("queue-section").hidden = false;

  const handle = upload(file, { ...OPTIONS, ...extra });
  const entry = { handle, file, progress: handle.progress() };
  rows.set(row, entry);

  const status = row.querySelector(".status");
  const errorBox = row.querySelector(".error");
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
    const words = {
      preparing: "Checking the file…",
      uploading: "Uploading…",
      paused: "Paused.",
      completing: "Putting the parts together…",
      completed: "Uploaded.",
      cancelled: "Cancelled.",
      failed: "Failed.",
    };
    status.textContent = words[state] ?? "";
    if (state === "completed" && entry.note) status.textContent = `${words[state]} ${entry.note()}`;
    if (["completed", "cancelled", "failed", "paused"].includes(state)) {
      announce(`${file.name}: ${words[state]}`);
    }
    if (["completed", "cancelled"].includes(state)) refreshLists();
    render();
  });
  handle.on("resume", (previous) => {
    row.dataset.resumed = "true";
    const note = `Continuing an earlier upload: ${previous.partsUploaded} of ${previous.partCount} parts were already there.`;
    entry.note = () =>
      `It continued an earlier upload and sent ${formatBytes(entry.progress.bytesSent)} of ${formatBytes(file.size)}.`;
    row.querySelector(".status").textContent = note;
    announce(`${file.name}: ${note}`);
  });
  handle.on("mismatch", () => {
    row.dataset.mismatch = "true";
    const note = "This is not the file of the unfinished upload with the same name, so it is uploaded separately.";
    entry.note = () => note;
    row.querySelector(".status").textContent = note;
    announce(`${file.name}: ${note}`);
  });
  handle.on("progress", (progress) => {
    entry.progress = progress;
    if (handle.upload) row.dataset.uploadId = handle.upload.id;
    scheduleRender();
  });
  handle.on("error", (error) => {
    row.dataset.errorCode = error.code;
    errorBox.textContent = describeError(error);
    errorBox.hidden = false;
    refreshLists();
  });

  row.addEventListener("click", async (event) => {
    const action = event.target.closest("button")?.dataset.action;
    if (action === "pause") handle.pause();
    if (action === "resume") handle.resume();
    if (action === "cancel") {
      event.target.disabled = true;
      await handle.cancel();
      event.target.disabled = false;
    }
    if (action === "dismiss") {
      rows.delete(row);
      row.remove();
      $("queue-section").hidden = rows.size === 0;
      render();
      $("file-input").focus();
    }
    // Keep keyboard focus on the row's visible control after a button hides itself.
    if (action && event.target.hidden) row.querySelector(".actions button:not([hidden])")?.focus();
  });
  return handle;
}

// --- rendering progress, at most once per frame ----------------------------------------------
let frame = 0;
function scheduleRender() {
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

function render() {
  let done = 0;
  let total = 0;
  let speed = 0;
  let active = 0;
  let counted = 0;
  for (const [row, { handle, progress }] of rows) {
    const bar = row.querySelector("progress");
    const percent = handle.state === "completed" ? 100 : progress.percent;
    bar.value = percent;
    const text = `${Math.floor(percent)}%`;
    const extra = handle.state === "uploading" ? describeSpeed(progress) : "";
    bar.setAttribute("aria-valuetext", extra ? `${text}, ${extra}` : text);
    row.dataset.bytesSent = progress.bytesSent;
    if (handle.state === "uploading" && row.dataset.resumed !== "true") {
      row.querySelector(".status").textContent = `${formatBytes(progress.bytesUploaded)} of ${formatBytes(progress.bytesTotal)}${extra ? ` · ${extra}` : ""}`;
    } else if (handle.state === "uploading") {
      row.querySelector(".status").textContent = `Resumed · ${formatBytes(progress.bytesUploaded)} of ${formatBytes(progress.bytesTotal)}${extra ? ` · ${extra}` : ""}`;
    }
    if (["cancelled", "failed"].includes(handle.state)) continue;
    counted++;
    done += handle.state === "completed" ? progress.bytesTotal : progress.bytesUploaded;
    total += progress.bytesTotal;
    if (handle.state === "uploading") {
      speed += progress.speed ?? 0;
      active++;
    }
  }
  const overall = $("overall-progress");
  const percent = total ? (100 * done) / total : counted ? 100 : 0;
  overall.value = percent;
  const parts = [`${formatBytes(done)} of ${formatBytes(total)}`];
  if (active && speed) {
    parts.push(`${formatBytes(speed)}/s`);
    parts.push(`about ${formatDuration((total - done) / speed)} left`);
  }
  const summary = counted
    ? `${counted} ${counted === 1 ? "file" : "files"}: ${parts.join(", ")}`
    : "Nothing is uploading.";
  overall.setAttribute("aria-valuetext", `${Math.floor(percent)}%, ${parts.slice(1).join(", ")}`.replace(/, $/, ""));
  $("overall-text").textContent = summary;
}

// --- the server's lists ----------------------------------------------------------------------
function uploadItem(item, { resumable }) {
  const li = document.createElement("li");
  li.className = "file";
  li.dataset.uploadId = item.id;
  li.dataset.filename = item.filename;
  const head = document.createElement("div");
  head.className = "file-head";
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = item.filename;
  const size = document.createElement("span");
  size.className = "size meta";
  size.textContent = formatBytes(item.size);
  head.append(name, size);
  const meta = document.createElement("p");
  meta.className = "meta";
  li.append(head, meta);
  if (!resumable) {
    meta.textContent = `Completed ${new Date(item.completedAt).toLocaleString()}`;
    return li;
  }
  const percent = item.size ? Math.floor((100 * item.bytesUploaded) / item.size) : 0;
  meta.textContent = `${percent}% uploaded (${item.partsUploaded} of ${item.partCount} parts), started ${new Date(item.createdAt).toLocaleString()}. Pick the same file again to resume.`;
  const actions = document.createElement("div");
  actions.className = "actions";
  const picker = document.createElement("input");
  picker.type = "file";
  picker.className = "visually-hidden-input";
  picker.id = `resume-${item.id}`;
  const pick = document.createElement("label");
  pick.className = "button";
  pick.htmlFor = picker.id;
  pick.textContent = "Resume…";
  pick.setAttribute("aria-label", `Resume ${item.filename}: pick the same file`);
  picker.addEventListener("change", () => {
    if (picker.files.length) startUpload(picker.files[0], { uploadId: item.id });
    picker.value = "";
  });
  const abort = document.createElement("button");
  abort.type = "button";
  abort.textContent = "Abort";
  abort.setAttribute("aria-label", `Abort the unfinished upload of ${item.filename} (its uploaded parts are deleted)`);
  abort.addEventListener("click", async () => {
    abort.disabled = true;
    try {
      await abortUpload(item.id, OPTIONS);
      announce(`Aborted the unfinished upload of ${item.filename}.`);
    } catch (error) {
      announce(`Could not abort ${item.filename}: ${describeError(error)}`);
      abort.disabled = false;
    }
    refreshLists();
  });
  actions.append(picker, pick, abort);
  li.append(actions);
  return li;
}

let refreshing = null;
async function refreshLists() {
  // One refresh at a time; a request made meanwhile runs once more afterwards.
  if (refreshing) {
    refreshing.again = true;
    return;
  }
  refreshing = { again: false };
  try {
    const active = new Set([...rows.values()].filter(({ handle }) => !["completed", "failed", "cancelled"].includes(handle.state)).map(({ handle }) => handle.upload?.id));
    const [unfinished, completed] = await Promise.all([
      listUnfinishedUploads(OPTIONS),
      listUploads({ status: "completed" }, OPTIONS),
    ]);
    const shown = unfinished.filter((item) => !active.has(item.id));
    $("unfinished").replaceChildren(...shown.map((item) => uploadItem(item, { resumable: true })));
    $("unfinished-empty").hidden = shown.length > 0;
    $("completed").replaceChildren(...completed.uploads.map((item) => uploadItem(item, { resumable: false })));
    $("completed-empty").hidden = completed.uploads.length > 0;
    app.dataset.listsLoaded = String(Number(app.dataset.listsLoaded || 0) + 1);
  } catch (error) {
    announce(`Could not load your uploads: ${describeError(error)}`);
  } finally {
    const again = refreshing.again;
    refreshing = null;
    if (again) refreshLists();
  }
}

// --- wiring ----------------------------------------------------------------------------------
const input = $("file-input");
input.addEventListener("change", () => {
  startUploads([...input.files]);
  input.value = "";
});

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
  const files = [...(event.dataTransfer?.files ?? [])];
  if (files.length) startUploads(files);
});
// A file dropped next to the zone must not make the browser navigate away from the page.
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());

window.addEventListener("beforeunload", (event) => {
  const busy = [...rows.values()].some(({ handle }) => ["preparing", "uploading", "completing"].includes(handle.state));
  if (busy) event.preventDefault();
});

refreshLists();
app.dataset.ready = "true";
