// Messages that stay until read: each is an item of a list with its own Dismiss button, so a
// later message never overwrites an earlier one (the row's status line is for figures only).

/** Add `text` to the message list `list` (once: the same text is not repeated). */
export function addMessage(list, text, { label = "Dismiss this message" } = {}) {
  for (const item of list.children) {
    if (item.dataset.text === text) return item;
  }
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.text = text;
  const words = document.createElement("span");
  words.textContent = text;
  const dismiss = document.createElement("button");
  dismiss.type = "button";
  dismiss.className = "link";
  dismiss.textContent = "Dismiss";
  dismiss.setAttribute("aria-label", label);
  dismiss.addEventListener("click", () => {
    item.remove();
    list.hidden = list.children.length === 0;
  });
  item.append(words, " ", dismiss);
  list.append(item);
  list.hidden = false;
  return item;
}
