// Files the page can read again without a file dialog: where the File System Access API exists
// (Chromium), the handle of each file being uploaded is kept in IndexedDB under its upload id,
// so that after a reload, a crash or a browser restart the page offers "Continue <name>".
// Where the API (or IndexedDB) is missing every function here degrades to "nothing kept" and
// the page works with <input type=file> alone.

const DATABASE = "partwise-page";
const STORE = "file-handles";

/** True where file handles can be obtained and kept (Chromium's File System Access API). */
export function supported() {
  return typeof indexedDB !== "undefined" && typeof FileSystemFileHandle !== "undefined";
}

/** True where the page can open the picker that hands out handles. */
export function pickerSupported() {
  return supported() && typeof window.showOpenFilePicker === "function";
}

/** Handles from the picker; [] when the person closes it. */
export async function pickHandles() {
  try {
    return await window.showOpenFilePicker({ multiple: true });
  } catch (error) {
    if (error?.name === "AbortError") return [];
    throw error;
  }
}

/**
 * Promises of the file handles of a drop, or null where the browser gives none. Must be called
 * synchronously in the drop listener: the items are only readable during the event.
 */
export function handlesOfDrop(event) {
  const items = [...(event.dataTransfer?.items ?? [])].filter((item) => item.kind === "file");
  if (!supported() || !items.length || typeof items[0].getAsFileSystemHandle !== "function") return null;
  return items.map((item) => item.getAsFileSystemHandle());
}

let opened = null;
function database() {
  opened ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DATABASE, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "uploadId" });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  return opened;
}

async function transaction(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const request = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(request?.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

// Keeping handles is a convenience: a failure (private mode, quota) must never stop an upload.
async function quietly(work, fallback) {
  if (!supported()) return fallback;
  try {
    return await work();
  } catch (error) {
    console.warn("partwise: file handles are not kept:", error);
    return fallback;
  }
}

/** Keep `handle` as the file of upload `uploadId`. */
export function remember(uploadId, handle, file) {
  const record = { uploadId, handle, name: file.name, size: file.size, lastModified: file.lastModified };
  return quietly(() => transaction("readwrite", (store) => store.put(record)));
}

/** Drop the handle of an upload that ended (completed, cancelled, aborted, gone). */
export function forget(uploadId) {
  return quietly(() => transaction("readwrite", (store) => store.delete(uploadId)));
}

/** Every kept handle: Map uploadId -> { handle, name, size, lastModified }. */
export async function recall() {
  const records = await quietly(() => transaction("readonly", (store) => store.getAll()), []);
  return new Map(records.map((record) => [record.uploadId, record]));
}

/**
 * The file behind a kept handle, after the browser's permission prompt if it asks one (it must
 * be called from a click). Null when the person refuses or the file is gone.
 */
export async function fileOf(handle) {
  const options = { mode: "read" };
  let permission = (await handle.queryPermission?.(options)) ?? "granted";
  if (permission === "prompt") permission = await handle.requestPermission(options);
  if (permission !== "granted") return null;
  try {
    return await handle.getFile();
  } catch (error) {
    if (error?.name === "NotFoundError") return null;
    throw error;
  }
}
