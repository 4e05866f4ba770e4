/* The side panel: the neighbours list, a point's neighbours, the search box and the colour menu. */

import { materialUrl, postJSON } from "./api.js";
import { escapeHtml, formatDistance, formulaHtml, normaliseElement, symbolHtml } from "./format.js";
import { centreOn, render } from "./plot.js";
import { pointXY } from "./points.js";
import { el, hooks, paths, state } from "./state.js";
import { setStatus, showError } from "./ui.js";

export const TOP_K = 10;
const EMPTY_TITLE = "Click a point, search, or upload a file.";

/** A neighbour as the list and the map show it, from a search hit or a /v1/map/place hit. */
export function neighbour(hit, rank, fields) {
  return {
    rank,
    material_id: hit.material_id,
    distance: hit.distance,
    formula: fields.formula || "?",
    spacegroup_symbol: fields.spacegroup_symbol || null,
    source: fields.source || "",
    x: typeof fields.x === "number" ? fields.x : null,
    y: typeof fields.y === "number" ? fields.y : null,
    match: hit.match || null, // a pattern's search-match: {score, strain, shift}
    notion: hit.notion || null, // which vectors found it (crystal, structure, xrd)
    fusion: hit.fusion || null, // a fused (hybrid) search: rrf or zscore
  };
}

/** "+0.41 %" for a fitted strain, "−0.030°" for a zero shift (a real minus sign). */
function signed(value, digits, unit) {
  const text = Math.abs(value).toFixed(digits);
  return `${value < 0 ? "\u2212" : "+"}${text}${unit}`;
}

export function renderNeighbours(titleHtml) {
  el.neighbours.innerHTML = "";
  el.neighboursTitle.innerHTML = titleHtml || EMPTY_TITLE;
  const anything = state.neighbours.length || state.query || state.selected !== null || state.matches.length;
  el.clear.hidden = !anything;
  for (const hit of state.neighbours) {
    const li = document.createElement("li");
    li.dataset.materialId = hit.material_id;
    li.dataset.distance = String(hit.distance);
    li.title = "Show on the map";
    const onMap = hit.x !== null && hit.y !== null;
    const group = hit.spacegroup_symbol ? ` · ${symbolHtml(hit.spacegroup_symbol)}` : "";
    li.innerHTML =
      `<span class="rank">${hit.rank}</span>` +
      `<span class="what"><div class="formula">${formulaHtml(hit.formula)}</div>` +
      `<div class="meta"><a href="${materialUrl(paths().material, hit.material_id)}" target="_blank" ` +
      `rel="noopener">${escapeHtml(hit.material_id)}</a>${group}` +
      `${hit.source ? ` · ${escapeHtml(hit.source)}` : ""}` +
      `${hit.fusion ? ` · <span class="notion" title="fused by ${escapeHtml(hit.fusion)}">${escapeHtml(hit.notion || "")}</span>` : ""}` +
      `${onMap ? "" : ' <span class="off-map">(not on this map)</span>'}</div>` +
      (hit.match
        ? `<div class="fit" title="fitted isotropic strain and 2θ zero shift">strain ` +
          `${signed(100 * hit.match.strain, 2, " %")} · shift ${signed(hit.match.shift, 3, "°")}</div>`
        : "") +
      `</span>` +
      (hit.match
        ? `<span class="distance match" title="search-match score (cosine of your pattern with this material's, ` +
          `strain and shift fitted); embedding distance ${formatDistance(hit.distance)}">` +
          `${hit.match.score.toFixed(3)}</span>`
        : `<span class="distance" title="distance in the embedding space">${formatDistance(hit.distance)}</span>`);
    li.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      const index = state.idIndex.get(hit.material_id);
      if (index !== undefined) selectPoint(index);
    });
    el.neighbours.appendChild(li);
  }
  hooks.seq += 1;
}

/** List the neighbours of stored point `index` (the search route) and mark them on the map. */
export async function selectPoint(index) {
  const p = state.points;
  const id = p.material_id[index];
  const token = ++state.token;
  state.selected = index;
  hooks.busy = true;
  setStatus(`Finding the neighbours of ${id}…`);
  let answer;
  try {
    // No `using` unless one is picked: the service searches by the measured best for an id (its answer says which).
    const body = { material_id: id, top_k: TOP_K };
    if (el.neighbourUsing && el.neighbourUsing.value) body.using = el.neighbourUsing.value;
    answer = await postJSON(paths().search, body);
  } catch (e) {
    if (token === state.token) {
      hooks.busy = false;
      showError(`Neighbours of ${id}: ${e.message}`);
    }
    return;
  }
  if (token !== state.token) return;
  state.neighbours = (answer.hits || []).map((hit, k) => {
    const at = state.idIndex.get(hit.material_id);
    const xy = at === undefined ? {} : pointXY(at);
    return neighbour(hit, k + 1, Object.assign({}, hit.payload || {}, xy));
  });
  const group = p.spacegroup_symbol[index] ? ` · ${symbolHtml(p.spacegroup_symbol[index])}` : "";
  renderNeighbours(`Nearest to <b>${formulaHtml(p.formula[index])}</b> <span>(${escapeHtml(id)}${group})</span>`);
  setStatus(`${state.neighbours.length} neighbours of ${id}.`, "ok");
  await render();
  hooks.busy = false;
}

/** Mark the materials with this exact reduced formula or id; one match lists its neighbours. */
export async function search(text) {
  const q = (text || "").trim();
  if (!state.points) {
    showError("The map is not loaded yet.");
    return;
  }
  if (!q) {
    state.matches = [];
    setStatus("");
    await render();
    return;
  }
  let matches = [];
  if (state.idIndex.has(q)) {
    matches = [state.idIndex.get(q)];
  } else if (state.formulaIndex.has(q)) {
    matches = state.formulaIndex.get(q).slice();
  }
  state.matches = matches;
  if (!matches.length) {
    setStatus(
      `Nothing matches “${q}”: give an exact reduced formula (case-sensitive, e.g. BaTiO3) or a material id (e.g. cod:1000000).`,
      "warn",
    );
    hooks.seq += 1;
    await render();
    return;
  }
  setStatus(matches.length === 1 ? `1 material matches “${q}”.` : `${matches.length} materials match “${q}”.`, "ok");
  await render();
  await centreOn(matches.map(pointXY));
  if (matches.length === 1) await selectPoint(matches[0]);
}

/** The "Colour by" menu, from the colour fields of GET /v1/map/meta. */
export function fillColourMenu(meta) {
  state.fields = new Map(meta.fields.map((f) => [f.key, f]));
  el.colorBy.innerHTML = "";
  for (const field of meta.fields) {
    const option = document.createElement("option");
    option.value = field.key;
    option.textContent = field.label;
    option.selected = field.key === meta.default_field;
    el.colorBy.appendChild(option);
  }
  el.colorBy.disabled = false;
  el.element.classList.toggle("inactive", !isElementMode());
}

function isElementMode() {
  const field = state.fields.get(el.colorBy.value);
  return Boolean(field && field.kind === "element");
}

export function onColourChange() {
  const elementMode = isElementMode();
  el.element.classList.toggle("inactive", !elementMode);
  if (elementMode) {
    const element = normaliseElement(el.element.value);
    if (element && state.points && !state.elementCounts.has(element)) {
      setStatus(`No material on the map contains ${element}.`, "warn");
    } else if (element && state.points) {
      setStatus(`${state.elementCounts.get(element)} of ${state.n} materials contain ${element}.`);
    }
  }
  render();
}

/** Typing an element means colouring by it. */
export function selectElementMode() {
  const field = Array.from(state.fields.values()).find((f) => f.kind === "element");
  if (!field) return false;
  el.colorBy.value = field.key;
  el.element.classList.remove("inactive");
  return true;
}
