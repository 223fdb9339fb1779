// The server's lists on the page: unfinished uploads (with what S3 holds, and a "Continue"
// button where the file's handle was kept) and completed uploads (newest first, paged).
// An upload this tab is sending is never offered again under "Unfinished".

import { abortUpload, getUpload, listUnfinishedUploads, listUploads } from "./client.js";
import { confirmAction } from "./dialog.js";
import * as fileHandles from "./filehandles.js";
import { describeError, formatBytes } from "./words.js";

/** The completed list's first page; "Show more" asks the API's cursor for the next one. */
export const COMPLETED_PAGE = 50;
const MAX_PAGE = 200; // the API's max_page_size
const DETAILS_AT_ONCE = 4;

const $ = (id) => document.getElementById(id);

/**
 * @param {object} page
 * @param {object} page.options  client options (endpoint)
 * @param {(id: string) => boolean} page.isLive  true while this tab sends that upload
 * @param {(file: File, uploadId: string, fileHandle: object) => void} page.resume
 * @param {(text: string) => void} page.say  a message that stays until read
 */
export function createLists({ options, isLive, resume, say }) {
  let unfinished = []; // reconciled uploads, newest first
  let kept = new Map(); // upload id -> kept file handle record
  let completedShown = 0;
  let completedNext = null;
  let refreshing = null;

  async function reconciled(items) {
    // The list's figures are what clients reported; the detail asks S3 (ListParts), which
    // also holds the parts sent but never reported before a tab closed.
    const result = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const index = next++;
        const item = items[index];
        try {
          result[index] = isLive(item.id) ? item : await getUpload(item.id, options);
        } catch {
          result[index] = item; // the list's figure is better than no row
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DETAILS_AT_ONCE, items.length) }, worker));
    return result.filter((item) => item.status === "uploading");
  }

  function renderUnfinished() {
    const shown = unfinished.filter((item) => !isLive(item.id));
    $("unfinished").replaceChildren(...shown.map(unfinishedItem));
    $("unfinished-empty").hidden = shown.length > 0;
  }

  function head(item) {
    const li = document.createElement("li");
    li.className = "file";
    li.dataset.uploadId = item.id;
    li.dataset.filename = item.filename;
    const top = document.createElement("div");
    top.className = "file-head";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.filename;
    const size = document.createElement("span");
    size.className = "size meta";
    size.textContent = formatBytes(item.size);
    top.append(name, size);
    const meta = document.createElement("p");
    meta.className = "meta";
    li.append(top, meta);
    return [li, meta];
  }

  function button(text, label, onClick) {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = text;
    element.setAttribute("aria-label", label);
    element.addEventListener("click", onClick);
    return element;
  }

  function unfinishedItem(item) {
    const [li, meta] = head(item);
    const percent = item.size ? Math.floor((100 * item.bytesUploaded) / item.size) : 0;
    li.dataset.partsUploaded = item.partsUploaded;
    const record = kept.get(item.id);
    const how = record ? `Continue it here, or pick the file again` : "Pick the same file again to resume";
    meta.textContent =
      `${percent}% uploaded (${item.partsUploaded} of ${item.partCount} parts, ` +
      `${formatBytes(item.bytesUploaded)} in storage), started ${new Date(item.createdAt).toLocaleString()}. ${how}.`;

    const actions = document.createElement("div");
    actions.className = "actions";
    if (record) {
      const go = button(`Continue ${record.name}`, `Continue ${record.name}`, async () => {
        go.disabled = true;
        const file = await fileHandles.fileOf(record.handle).catch(() => null);
        go.disabled = false;
        if (!file) {
          say(`The browser did not let the page read ${record.name}; pick the file again to continue.`);
          return;
        }
        resume(file, item.id, record.handle);
      });
      go.className = "primary";
      actions.append(go);
    }
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
      if (picker.files.length) resume(picker.files[0], item.id, null);
      picker.value = "";
    });
    const abort = button("Abort…", `Abort the unfinished upload of ${item.filename} (its uploaded parts are deleted)`, async () => {
      const sure = await confirmAction({
        title: `Abort the upload of ${item.filename}?`,
        text: item.bytesUploaded
          ? `The ${formatBytes(item.bytesUploaded)} already uploaded (${item.partsUploaded} of ${item.partCount} parts) will be deleted from storage. This cannot be undone.`
          : "Its upload is deleted from storage. This cannot be undone.",
        keep: "Keep it",
        confirm: "Abort and delete the parts",
      });
      if (!sure) return;
      abort.disabled = true;
      try {
        await abortUpload(item.id, options);
        fileHandles.forget(item.id);
        say(`Aborted the unfinished upload of ${item.filename}.`);
      } catch (error) {
        say(`Could not abort ${item.filename}: ${describeError(error)}`);
        abort.disabled = false;
      }
      refresh();
    });
    abort.classList.add("danger");
    actions.append(picker, pick, abort);
    li.append(actions);
    return li;
  }

  function completedItem(item) {
    const [li, meta] = head(item);
    meta.textContent = `Completed ${new Date(item.completedAt).toLocaleString()}`;
    const actions = document.createElement("div");
    actions.className = "actions";
    // A plain link: the server answers 302 to a short-lived presigned URL, and S3 serves the
    // file as an attachment under its own name (Content-Disposition), so the browser saves it.
    const download = document.createElement("a");
    download.className = "button";
    download.href = `${options.endpoint}${item.id}/download/`;
    download.textContent = "Download";
    download.setAttribute("aria-label", `Download ${item.filename}`);
    const remove = button("Delete…", `Delete the file ${item.filename} from storage`, async () => {
      const sure = await confirmAction({
        title: `Delete ${item.filename}?`,
        text: `The file (${formatBytes(item.size)}) is deleted from storage; the upload's record stays, marked deleted. This cannot be undone.`,
        keep: "Keep it",
        confirm: "Delete the file",
      });
      if (!sure) return;
      remove.disabled = true;
      try {
        // If-Match names the file this row shows: a file replaced since is never deleted.
        await abortUpload(item.id, { ...options, headers: { ...options.headers, "If-Match": `"${item.etag}"` } });
        li.remove();
        completedShown = Math.max(0, completedShown - 1);
        $("completed-empty").hidden = completedShown > 0;
        renderCompletedFooter();
        say(`Deleted ${item.filename}.`);
      } catch (error) {
        say(`Could not delete ${item.filename}: ${describeError(error)}`);
        remove.disabled = false;
        refresh();
      }
    });
    remove.classList.add("danger");
    actions.append(download, remove);
    li.append(actions);
    return li;
  }

  function renderCompletedFooter() {
    const more = completedNext !== null;
    $("completed-more").hidden = !more;
    const hint = $("completed-hint");
    hint.hidden = completedShown === 0;
    hint.textContent = more
      ? `Showing the newest ${completedShown}; there are more.`
      : `Showing all ${completedShown}.`;
  }

  async function showMoreCompleted() {
    if (!completedNext) return;
    const button = $("completed-more");
    button.disabled = true;
    try {
      const page = await listUploads({ next: completedNext }, options);
      $("completed").append(...page.uploads.map(completedItem));
      completedShown += page.uploads.length;
      completedNext = page.next;
      renderCompletedFooter();
    } catch (error) {
      say(`Could not load more completed uploads: ${describeError(error)}`);
    } finally {
      button.disabled = false;
    }
  }
  $("completed-more").addEventListener("click", showMoreCompleted);

  /** Load both lists again (one refresh at a time; asked meanwhile, it runs once more). */
  async function refresh() {
    if (refreshing) {
      refreshing.again = true;
      return;
    }
    refreshing = { again: false };
    try {
      // As many completed uploads as are shown now, so a refresh never folds "Show more" back.
      const pageSize = Math.min(MAX_PAGE, Math.max(COMPLETED_PAGE, completedShown));
      const [open, completed, handles] = await Promise.all([
        listUnfinishedUploads(options),
        listUploads({ status: "completed", page_size: pageSize }, options),
        fileHandles.recall(),
      ]);
      unfinished = await reconciled(open);
      kept = handles;
      const openIds = new Set(open.map((item) => item.id));
      // A kept handle whose upload ended (here or elsewhere) is not needed any more.
      for (const id of kept.keys()) {
        if (!openIds.has(id) && !isLive(id)) {
          kept.delete(id);
          fileHandles.forget(id);
        }
      }
      renderUnfinished();
      $("completed").replaceChildren(...completed.uploads.map(completedItem));
      completedShown = completed.uploads.length;
      completedNext = completed.next;
      $("completed-empty").hidden = completedShown > 0;
      renderCompletedFooter();
      const app = $("app");
      app.dataset.listsLoaded = String(Number(app.dataset.listsLoaded || 0) + 1);
    } catch (error) {
      say(`Could not load your uploads: ${describeError(error)}`);
    } finally {
      const again = refreshing.again;
      refreshing = null;
      if (again) refresh();
    }
  }

  /** Keep `fileHandle` for `uploadId`, so a later visit can continue without a file dialog. */
  function keep(uploadId, fileHandle, file) {
    kept.set(uploadId, { uploadId, handle: fileHandle, name: file.name });
    return fileHandles.remember(uploadId, fileHandle, file);
  }

  function drop(uploadId) {
    kept.delete(uploadId);
    return fileHandles.forget(uploadId);
  }

  return { refresh, renderUnfinished, keep, drop };
}
