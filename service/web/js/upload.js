/*
 * Placing a query: an uploaded (or dropped) CIF or XRD pattern is sent to the place route, which
 * embeds it and answers with its position and neighbours; nothing is stored (api.js postForm: the
 * upload's progress is shown).
 */

import { postForm } from "./api.js";
import { escapeHtml, formulaHtml, symbolHtml } from "./format.js";
import { schedulePoll } from "./loader.js";
import { TOP_K, neighbour, renderNeighbours } from "./panel.js";
import { centreOn, render } from "./plot.js";
import { hooks, paths, state } from "./state.js";
import { setProgress, setStatus, showError } from "./ui.js";

export async function upload(file) {
  if (!file) return;
  if (!state.points) {
    showError("The map is not loaded yet: wait until it is computed, then upload again.");
    return;
  }
  const token = ++state.token;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("top_k", String(TOP_K));
  state.uploading = true;
  hooks.busy = true;
  setStatus(`Uploading ${file.name}…`);
  setProgress(0);
  let answer;
  try {
    answer = await postForm(paths().place, form, {
      onProgress: (fraction) => {
        setProgress(fraction);
        setStatus(`Uploading ${file.name}… ${Math.round(100 * fraction)}%`);
      },
      onSent: () => {
        setProgress(null);
        setStatus(`Embedding and placing ${file.name}…`);
      },
    });
  } catch (e) {
    if (token === state.token) showError(e.message.indexOf(file.name) >= 0 ? e.message : `${file.name}: ${e.message}`);
    return;
  } finally {
    state.uploading = false;
    setProgress(undefined);
    if (token === state.token) hooks.busy = false;
  }
  if (token !== state.token) return;
  hooks.busy = true;
  try {
    await placeQuery(answer, file.name);
  } catch (e) {
    showError(`${file.name}: ${e.message}`);
  } finally {
    hooks.busy = false;
  }
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
