/* The results page's status line and progress bar (js/feedback.js, as on the map page). */

import { statusLine } from "../feedback.js";
import { el, hooks } from "./state.js";

const line = statusLine(el.status, el.progress);

export function setStatus(text, kind) {
  line.set(text, kind);
}

/** An error in the status line (the service's message, never a raw body); counts as an answer. */
export function showError(text) {
  line.set(text, "error");
  hooks.seq += 1;
}

/** fraction in [0, 1]: a bar; null: an indeterminate bar; undefined: hidden. */
export function setProgress(fraction) {
  line.progress(fraction);
}
