/* The ranked hits of a search, nearest first; a click compares one with the query. */

import { materialUrl } from "../api.js";
import { escapeHtml, formatDistance, formulaHtml, symbolHtml } from "../format.js";
import { el, hooks, paths, state } from "./state.js";

export const NOTIONS = {
  crystal: "concept embedding (crystal encoder)",
  structure: "structure type (chemistry-blind encoder)",
  hybrid: "concept and structure type, fused",
  xrd: "diffraction embedding (XRD encoder)",
};

/** A hit's notion badge: which vectors found it, and for a fused search how (rrf, zscore). */
function notionBadge(hit) {
  if (!hit.notion) return "";
  const how = hit.fusion ? ` · ${hit.fusion}` : "";
  const title = `found by ${NOTIONS[hit.notion] || hit.notion}${hit.fusion ? `, fused by ${hit.fusion}` : ""}`;
  return ` · <span class="notion" title="${escapeHtml(title)}">${escapeHtml(hit.notion)}${escapeHtml(how)}</span>`;
}

/** The list of hits under a title (html); `onSelect(hit)` when one is clicked. */
export function renderHits(titleHtml, hits, onSelect) {
  el.hitsTitle.innerHTML = titleHtml;
  el.hits.innerHTML = "";
  hits.forEach((hit, k) => {
    const p = hit.payload || {};
    const li = document.createElement("li");
    li.dataset.materialId = hit.material_id;
    li.dataset.distance = String(hit.distance);
    li.title = "Compare with the query";
    const group = p.spacegroup_symbol ? ` · ${symbolHtml(p.spacegroup_symbol)}` : "";
    li.innerHTML =
      `<span class="rank">${k + 1}</span>` +
      `<span class="what"><div class="formula">${formulaHtml(p.formula)}</div>` +
      `<div class="meta"><a href="${materialUrl(paths().material, hit.material_id)}" target="_blank" ` +
      `rel="noopener">${escapeHtml(hit.material_id)}</a>${group}` +
      `${p.source ? ` · ${escapeHtml(p.source)}` : ""}${notionBadge(hit)}</div></span>` +
      `<span class="distance" title="Euclidean distance between the embeddings">${formatDistance(hit.distance)}</span>`;
    li.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      onSelect(hit);
    });
    el.hits.appendChild(li);
  });
  hooks.hits = hits.map((h) => h.material_id);
  hooks.seq += 1;
}

export function markSelected(materialId) {
  for (const li of el.hits.children) li.classList.toggle("selected", li.dataset.materialId === materialId);
}

export function clearHits(titleHtml) {
  state.result = null;
  el.hits.innerHTML = "";
  el.hitsTitle.innerHTML = titleHtml || "";
  el.matches.hidden = true;
  el.matches.innerHTML = "";
  hooks.hits = [];
}
