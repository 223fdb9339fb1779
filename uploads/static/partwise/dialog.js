// The one confirmation the page asks before destroying uploaded parts: a modal <dialog> that
// names the file and what would be lost. "Keep" has the focus, so Enter or Escape keeps.

const dialog = () => document.getElementById("confirm");

/**
 * Ask before a destructive action. Resolves true only when the person chose `confirm`.
 * @param {{title: string, text: string, keep: string, confirm: string}} words
 */
export function confirmAction({ title, text, keep, confirm }) {
  const box = dialog();
  box.querySelector("#confirm-title").textContent = title;
  box.querySelector("#confirm-text").textContent = text;
  box.querySelector("#confirm-keep").textContent = keep;
  box.querySelector("#confirm-go").textContent = confirm;
  box.returnValue = "";
  return new Promise((resolve) => {
    box.addEventListener("close", () => resolve(box.returnValue === "confirm"), { once: true });
    box.showModal();
    box.querySelector("#confirm-keep").focus();
  });
}
