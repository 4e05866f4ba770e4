/* The selected hit's stored record as a table, with links to where it comes from (DOI, COD, Materials Project). */

import { materialUrl } from "../api.js";
import { escapeHtml, formatDistance, formulaHtml, symbolHtml } from "../format.js";
import { el, paths } from "./state.js";

const COD_PAGE = "https://www.crystallography.net/cod/";
const DOI_RESOLVER = "https://doi.org/";
const MP_PAGE = "https://next-gen.materialsproject.org/materials/";

function link(href, text) {
  return `<a href="${escapeHtml(href)}" target="_blank" rel="noopener">${escapeHtml(text)}</a>`;
}

/** The COD id of a payload: its own field, or the source id of a COD material. */
function codId(p) {
  if (p.cod_id) return String(p.cod_id);
  return p.source === "cod" && /^\d{7}$/.test(p.source_id || "") ? p.source_id : null;
}

/** The Materials Project id: the source id of an "mp" material (mp-149), or an mp_id tag. */
function mpId(p) {
  if (p.source === "mp" && /^mp[s]?-\d+$/.test(p.source_id || "")) return p.source_id;
  const tag = (p.tags || {}).mp_id;
  return tag && /^mp[s]?-\d+$/.test(tag) ? tag : null;
}

/** Rows of [label, html] for a hit (material id, distance, payload). */
export function detailRows(hit, using) {
  const p = hit.payload || {};
  const rows = [
    ["Material", `${link(materialUrl(paths().material, hit.material_id), hit.material_id)}`],
    // A fused (hybrid) hit's distance is in the notion that ranked it higher.
    [
      "Distance",
      `${formatDistance(hit.distance)} <span class="muted">(${escapeHtml(hit.notion || using)} vectors)</span>`,
    ],
    ["Formula", formulaHtml(p.formula)],
  ];
  if (p.mineral) rows.push(["Mineral", escapeHtml(p.mineral)]);
  if (p.elements) rows.push(["Elements", escapeHtml(p.elements.join(" "))]);
  if (p.spacegroup_symbol || p.spacegroup_number) {
    const symbol = p.spacegroup_symbol ? symbolHtml(p.spacegroup_symbol) : "";
    const number = p.spacegroup_number ? ` (${p.spacegroup_number})` : "";
    rows.push(["Space group", `${symbol}${number}${p.crystal_system ? ` · ${escapeHtml(p.crystal_system)}` : ""}`]);
  }
  const cell = [];
  if (p.n_sites) cell.push(`${p.n_sites} sites`);
  if (typeof p.volume === "number") cell.push(`${p.volume.toFixed(2)} Å³`);
  if (typeof p.density === "number") cell.push(`${p.density.toFixed(3)} g/cm³`);
  if (cell.length) rows.push(["Primitive cell", cell.join(" · ") + (p.disordered ? " · disordered" : "")]);
  rows.push(["Source", `${escapeHtml(p.source || "?")}${p.source_id ? `: ${escapeHtml(p.source_id)}` : ""}`]);
  const cod = codId(p);
  if (cod) rows.push(["COD", link(`${COD_PAGE}${encodeURIComponent(cod)}.html`, `COD ${cod}`)]);
  const mp = mpId(p);
  if (mp) rows.push(["Materials Project", link(`${MP_PAGE}${encodeURIComponent(mp)}`, mp)]);
  if (p.doi) rows.push(["DOI", link(`${DOI_RESOLVER}${p.doi.split("/").map(encodeURIComponent).join("/")}`, p.doi)]);
  const cite = [p.title, p.journal, p.year].filter(Boolean).map(escapeHtml);
  if (cite.length) rows.push(["Reference", cite.join(" · ")]);
  for (const [key, value] of Object.entries(p.tags || {})) {
    if (key !== "mp_id" && !(key === "mineral" && value === p.mineral)) rows.push([escapeHtml(key), escapeHtml(value)]);
  }
  return rows;
}

export function showDetails(hit, using) {
  el.details.innerHTML = detailRows(hit, using)
    .map(([label, html]) => `<tr><th>${label}</th><td>${html}</td></tr>`)
    .join("");
}
