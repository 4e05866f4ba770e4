/* The status line, the progress bar and the message over the map. */

import { statusLine } from "./feedback.js";
import { el, hooks } from "./state.js";

const line = statusLine(el.status, el.progress);

export function setStatus(text, kind) {
  line.set(text, kind);
}

export function showError(text) {
  setStatus(text, "error");
  hooks.seq += 1;
}

/** fraction in [0, 1]: a bar; null: an indeterminate bar; undefined: hidden. */
export function setProgress(fraction) {
  line.progress(fraction);
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
