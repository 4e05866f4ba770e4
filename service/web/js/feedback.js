/* The status line and progress bar, as every page shows them (the map's panel, the results page). */

/**
 * `status`: an element whose text and class ("status", "status ok|warn|error") tell what happens;
 * `bar`: a <progress>. Returns {set(text, kind), progress(fraction)}: fraction in [0, 1] is a bar,
 * null an indeterminate bar, undefined hides it.
 */
export function statusLine(status, bar) {
  return {
    set(text, kind) {
      status.textContent = text || "";
      status.className = "status" + (kind ? " " + kind : "");
    },
    progress(fraction) {
      if (fraction === undefined) {
        bar.hidden = true;
        bar.value = 0;
        return;
      }
      bar.hidden = false;
      if (fraction === null) {
        bar.removeAttribute("value");
      } else {
        bar.value = Math.max(0, Math.min(1, fraction));
      }
    },
  };
}
