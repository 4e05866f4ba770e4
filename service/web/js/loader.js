/*
 * Loading the map and keeping it current: the map state is polled (often while a layout is being
 * computed, rarely otherwise, so a computation started elsewhere is noticed), its progress is shown,
 * and the points of a new layout replace the old ones.
 */

import { requestJSON } from "./api.js";
import { escapeHtml } from "./format.js";
import { renderNeighbours } from "./panel.js";
import { render } from "./plot.js";
import { indexPoints } from "./points.js";
import { clearSelection, el, hooks, paths, state } from "./state.js";
import { setProgress, setStatus, showError, showOverlay } from "./ui.js";

const JOB_POLL_MS = 1000; // while a layout computation runs
export const IDLE_POLL_MS = 5000; // otherwise: notices a computation started elsewhere
const METHOD_NAMES = { tsne: "t-SNE", umap: "UMAP" };

function describeLayout(layout) {
  if (!layout) {
    el.layoutInfo.textContent = "no map computed yet";
    return;
  }
  const method = METHOD_NAMES[layout.method] || layout.method;
  const when = layout.created_at
    ? String(layout.created_at)
        .replace("T", " ")
        .replace(/(\.\d+)?(Z|[+-]00:?00)$/, " UTC")
        .replace(/\.\d+/, "")
    : "";
  const parts = [
    `<b>${escapeHtml(method)}</b> of <b>${Number(layout.n_points).toLocaleString("en")}</b> materials`,
    `model ${escapeHtml(layout.model_id)}`,
  ];
  if (when) {
    const took = typeof layout.elapsed_s === "number" ? ` in ${layout.elapsed_s.toFixed(1)} s` : "";
    parts.push(`computed ${escapeHtml(when)}${took}`);
  }
  el.layoutInfo.innerHTML = parts.join(" · ");
}

export function schedulePoll(ms) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, ms);
}

/** Read the map state once: show a running job, load a new layout, or say that there is none. */
export async function poll() {
  let info;
  try {
    info = await requestJSON(paths().map);
  } catch (e) {
    if (!state.uploading) showError(`Map state: ${e.message}`);
    schedulePoll(IDLE_POLL_MS);
    return;
  }
  const job = info.job || { state: "idle", stage: "", progress: 0, message: "" };
  const layout = info.layout;
  if (job.state === "running") {
    showJob(job);
    if (layout && !state.points) {
      await loadPoints(layout); // an older layout, shown until the new one is ready
    } else if (!state.points) {
      describeLayout(null);
    }
    schedulePoll(JOB_POLL_MS);
    return;
  }
  const wasShown = state.jobShown;
  hideJob();
  if (job.state === "failed") {
    showError(`Map computation failed: ${job.message || "no message"}`);
  } else if (wasShown && !state.uploading) {
    setStatus("");
  }
  if (layout && layout.layout_id !== hooks.layoutId) {
    await loadPoints(layout);
  } else if (!layout && !state.points) {
    describeLayout(null);
    showOverlay(
      "<b>No map yet.</b><br>It is computed from the stored embeddings with " +
        `<code>POST ${escapeHtml(paths().layout)}</code> (needs the API key); this page loads it when it is ready.`,
    );
  }
  schedulePoll(IDLE_POLL_MS);
}

function showJob(job) {
  state.jobShown = true;
  if (state.uploading) return; // the upload owns the bar; the map overlay still tells
  const pct = Math.round((job.progress || 0) * 100);
  setStatus(`Computing the map: ${job.stage || "running"} (${pct}%)${job.message ? ` — ${job.message}` : ""}`);
  setProgress(job.progress || 0);
  if (!state.points) {
    showOverlay(`<b>Computing the map…</b><br>${escapeHtml(job.stage || "running")} · ${pct}%`);
  }
}

function hideJob() {
  if (state.jobShown && !state.uploading) setProgress(undefined);
  state.jobShown = false;
}

async function loadPoints(layout) {
  let points;
  try {
    points = await requestJSON(paths().points);
  } catch (e) {
    if (e.code === "not_found") return; // no layout yet: the status overlay says so
    showError(`Loading the map: ${e.message}`);
    return;
  }
  indexPoints(points);
  hooks.layoutId = points.layout_id;
  state.layout = layout;
  clearSelection(); // positions from an older layout mean nothing on this one
  renderNeighbours(null);
  describeLayout(layout);
  showOverlay(state.n ? null : "<b>The map is empty.</b><br>Store some structures and compute it again.");
  await render();
  hooks.nPoints = state.n;
  hooks.ready = true;
}
