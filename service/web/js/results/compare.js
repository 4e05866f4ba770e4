/*
 * The comparison of the query with a selected hit: both structures in 3D side by side, their powder
 * patterns overlaid (an uploaded measurement against the hit's simulated pattern), the hit's record
 * with its links, and its CIF to download.
 */

import { escapeHtml, formatDistance, formulaHtml, symbolHtml } from "../format.js";
import { showDetails } from "./details.js";
import { markSelected } from "./hits.js";
import { drawPatterns } from "./pattern.js";
import {
  measuredPoints,
  storedPattern,
  storedRecord,
  storedStructure,
  structureUrl,
  uploadedPattern,
  viewerFormat,
} from "./sources.js";
import { el, hooks, state } from "./state.js";
import { setStatus, showError } from "./ui.js";
import { paneNote, showStructure, viewerAvailable, MISSING } from "./viewer.js";

function summaryHtml(formula, symbol, extra) {
  const facts = [symbol ? symbolHtml(symbol) : null, extra ? escapeHtml(extra) : null].filter(Boolean);
  return `<b>${formulaHtml(formula)}</b>${facts.length ? ` <span class="muted">${facts.join(" · ")}</span>` : ""}`;
}

/** A pattern answer as the plot takes it: a simulated one (PatternOut: sparse, on a grid) as sticks. */
function patternOf(answer, label) {
  const grid = typeof answer.n_bins === "number";
  return {
    label,
    two_theta: answer.two_theta,
    intensity: answer.intensity,
    sticks: grid,
    range: grid ? [answer.two_theta_min, answer.two_theta_max] : null,
  };
}

/** What a value or its error says, as {value} or {error: message}. */
async function settle(promise) {
  try {
    return { value: await promise };
  } catch (e) {
    return { error: e.message };
  }
}

/** The query's side of every comparison: its caption, structure file and pattern (loaded once per query). */
export async function loadQuerySide(query, answer) {
  if (query.id) {
    const [record, structure, pattern] = await Promise.all([
      settle(storedRecord(query.id)),
      settle(storedStructure(query.id)),
      settle(storedPattern(query.id)),
    ]);
    const p = (record.value && record.value.payload) || {};
    return {
      caption: summaryHtml(p.formula || query.id, p.spacegroup_symbol, query.id),
      structure: structure.value || null,
      structureNote: structure.error ? `${query.id}: ${structure.error}` : null,
      pattern: pattern.value ? patternOf(pattern.value, `${query.id} ${p.formula || ""} (simulated)`.trim()) : null,
      patternNote: pattern.error ? `query ${query.id}: ${pattern.error}` : null,
    };
  }
  const file = query.file;
  const s = answer.query_structure;
  if (!s) {
    const pattern = await settle(measuredPoints(file));
    return {
      caption: `<b>${escapeHtml(file.name)}</b> <span class="muted">measured pattern</span>`,
      structure: null,
      structureNote: `${escapeHtml(file.name)} is a measured powder pattern: there is no structure to draw.`,
      pattern: pattern.value ? patternOf(pattern.value, `${file.name} (measured)`) : null,
      measured: true,
      patternNote: pattern.error ? `${file.name}: ${pattern.error}` : null,
    };
  }
  const format = viewerFormat(file.name);
  const [text, pattern] = await Promise.all([settle(file.text()), settle(uploadedPattern(file))]);
  let structureNote = null;
  if (!format) structureNote = `The viewer draws CIF and POSCAR files; ${escapeHtml(file.name)} is neither.`;
  else if (text.error) structureNote = `${escapeHtml(file.name)}: ${escapeHtml(text.error)}`;
  return {
    caption: summaryHtml(s.formula, s.spacegroup_symbol, file.name),
    structure: format && text.value ? { text: text.value, format, cell: "as uploaded" } : null,
    structureNote,
    pattern: pattern.value ? patternOf(pattern.value, `${file.name} ${s.formula} (simulated)`) : null,
    patternNote: pattern.error ? `${file.name}: ${pattern.error}` : null,
  };
}

function drawQuery(side) {
  el.queryCaption.innerHTML = side.caption;
  if (!viewerAvailable()) {
    paneNote("query", MISSING, "error");
  } else if (side.structure) {
    try {
      showStructure("query", side.structure);
    } catch (e) {
      paneNote("query", `The viewer could not read this structure: ${escapeHtml(e.message)}`, "error");
    }
  } else {
    paneNote("query", side.structureNote || "No structure.", side.structureNote ? "" : "error");
  }
}

/** Compare the query with `hit` (a hit of the current answer). */
export async function selectHit(hit, onSelected) {
  const token = ++state.compareToken;
  const querySide = state.querySide;
  state.selected = hit;
  hooks.selected = hit.material_id;
  hooks.busy = true;
  markSelected(hit.material_id);
  if (onSelected) onSelected(hit);
  el.empty.hidden = true;
  el.compareBody.hidden = false;
  const p = hit.payload || {};
  el.hitCaption.innerHTML = summaryHtml(p.formula, p.spacegroup_symbol, hit.material_id);
  el.download.href = structureUrl(hit.material_id, "cif");
  el.download.setAttribute("download", `${hit.material_id.replace(/[^A-Za-z0-9._-]+/g, "_")}.cif`);
  el.download.hidden = false;
  showDetails(hit, state.result.using);
  paneNote("hit", "Loading the structure…");
  setStatus(`Loading ${hit.material_id}…`);

  const [side, structure, pattern] = await Promise.all([
    querySide,
    settle(storedStructure(hit.material_id)),
    settle(storedPattern(hit.material_id)),
  ]);
  if (token !== state.compareToken) return;
  if (state.drawnQuery !== querySide) {
    drawQuery(side);
    state.drawnQuery = querySide;
  }
  if (!viewerAvailable()) {
    paneNote("hit", MISSING, "error");
  } else if (structure.value) {
    try {
      showStructure("hit", structure.value);
    } catch (e) {
      paneNote("hit", `The viewer could not read ${escapeHtml(hit.material_id)}: ${escapeHtml(e.message)}`, "error");
    }
  } else {
    paneNote("hit", `${escapeHtml(hit.material_id)}: ${escapeHtml(structure.error)}`, "error");
  }
  const hitPattern = pattern.value
    ? patternOf(pattern.value, `${hit.material_id} ${p.formula || ""} (simulated)`)
    : null;
  const notes = [side.patternNote, pattern.error ? `${hit.material_id}: ${pattern.error}` : null].filter(Boolean);
  el.patternHint.textContent = side.measured ? "your measurement vs the hit's simulated pattern" : "simulated, Cu Kα";
  await drawPatterns(side.pattern, hitPattern, notes.join(" · "));
  if (token !== state.compareToken) return;
  const problems = [structure.error, pattern.error].filter(Boolean);
  if (problems.length) {
    showError(`${hit.material_id}: ${problems.join("; ")}`);
  } else {
    setStatus(`Comparing the query with ${hit.material_id} (distance ${formatDistance(hit.distance)}).`, "ok");
    hooks.seq += 1;
  }
  hooks.busy = false;
}

/** Nothing selected: the page's introduction instead of the comparison. */
export function clearComparison() {
  state.compareToken += 1;
  state.selected = null;
  state.drawnQuery = null;
  hooks.selected = null;
  hooks.viewers = { query: null, hit: null };
  hooks.patterns = [];
  el.compareBody.hidden = true;
  el.empty.hidden = false;
  el.download.hidden = true;
}
