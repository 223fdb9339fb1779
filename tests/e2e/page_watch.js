// Installed by tests/e2e/test_page_experience.py before the page's own script: records what the
// page showed over time, from DOM mutations (never by sampling on a timer), so that a test can
// assert on flashes a screenshot would miss.
//   statuses[name]    every distinct text of the row's status line, in order
//   connection[name]  every distinct text of its connection line
//   backwards         [name, before, after] whenever the row's shown bytes decreased
//   offered_while_live  upload ids listed under "Unfinished" while a live row was sending them
(() => {
  const statuses = {};
  const connection = {};
  const backwards = [];
  const offeredWhileLive = [];
  const shown = {};
  const LIVE = new Set(["preparing", "uploading", "paused", "completing"]);
  const push = (log, name, text) => {
    const list = (log[name] ??= []);
    if (list[list.length - 1] !== text) list.push(text);
  };
  const look = () => {
    for (const row of document.querySelectorAll("#queue > li")) {
      const name = row.dataset.filename;
      push(statuses, name, row.querySelector(".status")?.textContent ?? "");
      const lost = row.querySelector(".connection");
      if (lost && !lost.hidden) push(connection, name, lost.textContent);
      const bytes = Number(row.dataset.bytesShown ?? 0);
      const key = row.querySelector(".name")?.id ?? name;
      if (shown[key] !== undefined && bytes < shown[key]) backwards.push([name, shown[key], bytes]);
      shown[key] = Math.max(shown[key] ?? 0, bytes);
      const id = row.dataset.uploadId;
      if (id && LIVE.has(row.dataset.state) && document.querySelector(`#unfinished li[data-upload-id="${id}"]`)) {
        if (!offeredWhileLive.includes(id)) offeredWhileLive.push(id);
      }
    }
  };
  new MutationObserver(look).observe(document, {
    subtree: true,
    childList: true,
    characterData: true,
    attributes: true,
  });
  window.partwiseWatch = {
    report: () => ({ statuses, connection, backwards, offered_while_live: offeredWhileLive }),
  };
})();
