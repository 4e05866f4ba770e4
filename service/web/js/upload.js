/*
 * Placing a query: an uploaded (or dropped) CIF or XRD pattern is sent to the place route, which
 * embeds it and answers with its position and neighbours; nothing is stored. XMLHttpRequest, not
 * fetch, for the upload's progress events.
 */

import { errorMessage } from "./api.js";
import { escapeHtml, formulaHtml, symbolHtml } from "./format.js";
import { schedulePoll } from "./loader.js";
import { TOP_K, neighbour, renderNeighbours } from "./panel.js";
import { centreOn, render } from "./plot.js";
import { hooks, paths, state } from "./state.js";
import { setProgress, setStatus, showError } from "./ui.js";

export function upload(file) {
  if (!file) return;
  if (!state.points) {
    showError("The map is not loaded yet: wait until it is computed, then upload again.");
    return;
  }
  const token = ++state.token;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("top_k", String(TOP_K));
  const xhr = new XMLHttpRequest();
  xhr.open("POST", paths().place);
  xhr.setRequestHeader("accept", "application/json");
  state.uploading = true;
  hooks.busy = true;
  setStatus(`Uploading ${file.name}…`);
  setProgress(0);
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable && e.total > 0) {
      setProgress(e.loaded / e.total);
      setStatus(`Uploading ${file.name}… ${Math.round((100 * e.loaded) / e.total)}%`);
    }
  };
  xhr.upload.onload = () => {
    setProgress(null);
    setStatus(`Embedding and placing ${file.name}…`);
  };
  const finish = () => {
    state.uploading = false;
    setProgress(undefined);
    if (token === state.token) hooks.busy = false;
  };
  xhr.onload = () => {
    finish();
    if (token !== state.token) return;
    if (xhr.status < 200 || xhr.status >= 300) {
      const message = errorMessage(xhr.status, xhr.responseText);
      showError(message.indexOf(file.name) >= 0 ? message : `${file.name}: ${message}`);
      return;
    }
    let answer;
    try {
      answer = JSON.parse(xhr.responseText);
    } catch (e) {
      showError(`${file.name}: the service answered with something that is not JSON`);
      return;
    }
    hooks.busy = true;
    placeQuery(answer, file.name).then(
      () => {
        hooks.busy = false;
      },
      (e) => {
        hooks.busy = false;
        showError(`${file.name}: ${e.message}`);
      },
    );
  };
  xhr.onerror = () => {
    finish();
    if (token === state.token) showError(`${file.name}: upload failed, the service did not answer (network error)`);
  };
  xhr.send(form);
}

async function placeQuery(answer, fileName) {
  const q = answer.query;
  if (answer.layout_id && answer.layout_id !== hooks.layoutId) {
    schedulePoll(0); // the map was recomputed meanwhile: reload it (the query is still listed)
  }
  state.selected = null;
  state.query = { x: q.x, y: q.y, label: q.label || fileName, kind: q.kind, structure: q.structure || null };
  state.neighbours = (answer.hits || []).map((hit, k) => neighbour(hit, k + 1, hit));
  const s = q.structure;
  const what = q.kind === "pattern" ? "XRD pattern" : "structure";
  const sameAsFormula = s && s.formula === state.query.label;
  const lead = state.neighbours.some((h) => h.match) ? "Best matches for" : "Nearest to"; // a pattern: search-match
  let title = `${lead} your ${what} <b>${sameAsFormula ? formulaHtml(s.formula) : escapeHtml(state.query.label)}</b>`;
  if (s) {
    const facts = [];
    if (!sameAsFormula) facts.push(formulaHtml(s.formula));
    if (s.spacegroup_symbol) facts.push(symbolHtml(s.spacegroup_symbol));
    if (s.n_sites) facts.push(`${s.n_sites} sites`);
    if (s.disordered) facts.push("disordered");
    if (facts.length) title += ` <span>(${facts.join(" · ")})</span>`;
  }
  renderNeighbours(title);
  setStatus(
    `${state.query.label} placed at (${q.x.toPrecision(3)}, ${q.y.toPrecision(3)}) with ${state.neighbours.length} neighbours.`,
    "ok",
  );
  await render();
  const near = state.neighbours.filter((h) => h.x !== null && h.y !== null);
  await centreOn([{ x: q.x, y: q.y }].concat(near.map((h) => ({ x: h.x, y: h.y }))));
  hooks.query = { x: q.x, y: q.y };
}
