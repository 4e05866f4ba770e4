/*
 * matconcept results page (GET /): find the stored structures nearest to a query, and compare one
 * with it. Native ES modules, no build step; shared with the map page: ../api.js (requests,
 * errors, configuration), ../format.js, ../feedback.js.
 *
 *   main.js     wiring of the controls, start-up, the address bar
 *   state.js    shared state, DOM elements, test hooks (window.matconceptResults)
 *   query.js    options and filters, the shareable address of a query
 *   formula.js  the stored materials of a formula
 *   search.js   running a query, listing the hits
 *   hits.js     the hits list
 *   compare.js  query and hit side by side: structures, patterns, record
 *   sources.js  structure files and patterns read from the service
 *   viewer.js   3D structures (3Dmol.js, vendored)
 *   pattern.js  the powder patterns (plotly.js)
 *   details.js  the hit's record with its links
 *   ui.js       status line and progress bar
 */

import { loadMeta } from "../api.js";
import { clearComparison } from "./compare.js";
import { clearHits } from "./hits.js";
import { redrawPatterns } from "./pattern.js";
import { fromAddress, parseTyped, readOptions, writeOptions } from "./query.js";
import { runQuery } from "./search.js";
import { el, hooks, state } from "./state.js";
import { setStatus, showError } from "./ui.js";
import { resizeViewers, viewerAvailable } from "./viewer.js";

const RETRY_MS = 5000;
const INTRO = "Type a formula or an id, or upload a file.";

function upload(file) {
  if (!file || !state.meta) return;
  el.queryInput.value = "";
  runQuery({ file }, readOptions(), { push: true });
}

/** The query of the address bar (on load, and on the browser's back and forward). */
function followAddress() {
  const { query, options, hit } = fromAddress(location.search);
  writeOptions(options);
  el.queryInput.value = query ? query.id || query.formula : "";
  if (query) {
    runQuery(query, options, { hit });
  } else {
    state.query = null;
    state.token += 1;
    clearHits(INTRO);
    clearComparison();
    setStatus("");
  }
}

function wire() {
  el.queryForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = parseTyped(el.queryInput.value);
    if (query) runQuery(query, readOptions(), { push: true });
  });
  // A changed option searches again with the same query (an uploaded file included).
  el.options.addEventListener("change", () => {
    if (state.query) runQuery(state.query, readOptions(), { push: true });
  });
  el.options.addEventListener("submit", (event) => event.preventDefault());
  el.upload.addEventListener("change", () => {
    upload(el.upload.files && el.upload.files[0]);
    el.upload.value = ""; // the same file can be chosen again
  });
  el.patternMirror.addEventListener("change", redrawPatterns);
  window.addEventListener("popstate", () => {
    if (state.meta) followAddress();
  });
  window.addEventListener("resize", resizeViewers);

  // Drop a file anywhere on the page (the drop zone lights up); a dropped file never navigates away.
  let depth = 0;
  const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).indexOf("Files") >= 0;
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    depth += 1;
    el.dropZone.classList.add("dragging");
    el.dropOverlay.hidden = false;
  });
  window.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) {
      el.dropOverlay.hidden = true;
      el.dropZone.classList.remove("dragging");
    }
  });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    el.dropOverlay.hidden = true;
    el.dropZone.classList.remove("dragging");
    upload(e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0]);
  });
}

/** Read the page's configuration (retried until the service answers), then the address's query. */
async function start() {
  try {
    state.meta = await loadMeta();
  } catch (e) {
    showError(`Page settings: ${e.message}`);
    setTimeout(start, RETRY_MS);
    return;
  }
  hooks.viewerLibrary = viewerAvailable();
  hooks.ready = true;
  followAddress();
}

wire();
start();
