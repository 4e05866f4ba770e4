/*
 * matconcept materials map: every stored material at its 2-d layout position (t-SNE or UMAP of
 * the embedding), drawn with plotly.js (loaded before this module, as the global `Plotly`).
 *
 * Native ES modules, no build step:
 *   main.js    wiring of the controls, start-up
 *   api.js     requests and error messages; the configuration (GET /v1/map/meta: paths, colour fields)
 *   state.js   shared state, DOM elements, test hooks (window.matconceptMap)
 *   loader.js  polling the map state, loading the points of a new layout
 *   points.js  indexes over the point columns, hover texts
 *   plot.js    the plotly traces, colouring by a field, zooming
 *   panel.js   neighbours list, a point's neighbours, search, colour menu
 *   upload.js  placing an uploaded CIF or XRD pattern
 *   ui.js      status line, progress bar, map overlay
 *   format.js  formulas, symbols, distances as HTML
 */

import { loadMeta } from "./api.js";
import { normaliseElement } from "./format.js";
import { IDLE_POLL_MS, poll } from "./loader.js";
import { fillColourMenu, onColourChange, renderNeighbours, search, selectElementMode, selectPoint } from "./panel.js";
import { render, setPointClickHandler } from "./plot.js";
import { clearSelection, el, state } from "./state.js";
import { setStatus, showError, showOverlay } from "./ui.js";
import { upload } from "./upload.js";

function wire() {
  setPointClickHandler(selectPoint);
  el.colorBy.addEventListener("change", onColourChange);
  let typing = null;
  el.element.addEventListener("input", () => {
    if (!normaliseElement(el.element.value)) return;
    if (!selectElementMode()) return;
    clearTimeout(typing);
    typing = setTimeout(onColourChange, 250); // redraw once typing pauses
  });
  el.element.addEventListener("change", () => {
    el.element.value = normaliseElement(el.element.value);
  });
  el.searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    search(el.search.value);
  });
  el.upload.addEventListener("change", () => {
    const file = el.upload.files && el.upload.files[0];
    upload(file);
    el.upload.value = ""; // the same file can be chosen again
  });
  el.neighbourUsing.addEventListener("change", () => {
    if (state.selected !== null) selectPoint(state.selected); // the same point's neighbours, by the new notion
  });
  el.clear.addEventListener("click", () => {
    clearSelection();
    state.token += 1;
    renderNeighbours(null);
    setStatus("");
    render();
  });

  // Drag and drop onto the map (or the drop zone); elsewhere a dropped file must not navigate away.
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).indexOf("Files") >= 0;
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  for (const target of [el.mapWrap, el.dropZone]) {
    target.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      depth += 1;
      el.dropZone.classList.add("dragging");
      if (target === el.mapWrap) el.dropOverlay.hidden = false;
    });
    target.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) {
        el.dropOverlay.hidden = true;
        el.dropZone.classList.remove("dragging");
      }
    });
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      depth = 0;
      el.dropOverlay.hidden = true;
      el.dropZone.classList.remove("dragging");
      const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      upload(file);
    });
  }
}

/** Read the page's configuration (retried until the service answers), then load the map. */
async function start() {
  try {
    state.meta = await loadMeta();
  } catch (e) {
    showError(`Map settings: ${e.message}`);
    setTimeout(start, IDLE_POLL_MS);
    return;
  }
  fillColourMenu(state.meta);
  poll();
}

wire();
if (typeof Plotly === "undefined") {
  showError("plotly.js did not load (/map/static/plotly.min.js); the map cannot be drawn.");
} else {
  showOverlay("Loading the map…");
  start();
}
