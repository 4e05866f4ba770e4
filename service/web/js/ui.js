/* The status line, the progress bar and the message over the map. */

import { el, hooks } from "./state.js";

export function setStatus(text, kind) {
  el.status.textContent = text || "";
  el.status.className = "status" + (kind ? " " + kind : "");
}

export function showError(text) {
  setStatus(text, "error");
  hooks.seq += 1;
}

/** fraction in [0, 1]: a bar; null: an indeterminate bar; undefined: hidden. */
export function setProgress(fraction) {
  if (fraction === undefined) {
    el.progress.hidden = true;
    el.progress.value = 0;
    return;
  }
  el.progress.hidden = false;
  if (fraction === null) {
    el.progress.removeAttribute("value");
  } else {
    el.progress.value = Math.max(0, Math.min(1, fraction));
  }
}

export function showOverlay(html) {
  if (html) {
    el.overlay.innerHTML = `<div class="box">${html}</div>`;
    el.overlay.hidden = false;
  } else {
    el.overlay.hidden = true;
    el.overlay.innerHTML = "";
  }
}
