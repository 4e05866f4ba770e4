/*
 * Which stored materials have a formula. The API searches by id, not by formula, so a formula is
 * looked up in the map's point columns (GET /v1/map/points: every stored material's id and reduced
 * formula), as the map page's search box does; they are read once per page.
 */

import { requestJSON } from "../api.js";
import { paths, state } from "./state.js";

const TOKEN = /([A-Z][a-z]?)(\d*\.?\d*)|(\()|(\))(\d*\.?\d*)|(\s+)/y;

function gcd(a, b) {
  return b ? gcd(b, a % b) : a;
}

/**
 * A formula's composition in one canonical text, so that "LiCoO2", "CoLiO2" and "Li2Co2O4" are
 * the same: element counts (brackets multiplied out) divided by their greatest common divisor and
 * listed alphabetically. null when the text is not a formula.
 */
export function formulaKey(text) {
  const stack = [new Map()];
  TOKEN.lastIndex = 0;
  const s = String(text || "").trim();
  if (!s) return null;
  while (TOKEN.lastIndex < s.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(s);
    if (!m || TOKEN.lastIndex === at) return null;
    if (m[1]) {
      const counts = stack[stack.length - 1];
      counts.set(m[1], (counts.get(m[1]) || 0) + (m[2] ? Number(m[2]) : 1));
    } else if (m[3]) {
      stack.push(new Map());
    } else if (m[4]) {
      if (stack.length < 2) return null;
      const inner = stack.pop();
      const times = m[5] ? Number(m[5]) : 1;
      const counts = stack[stack.length - 1];
      for (const [element, n] of inner) counts.set(element, (counts.get(element) || 0) + n * times);
    }
  }
  const counts = stack[0];
  if (stack.length !== 1 || !counts.size || Array.from(counts.values()).some((n) => !(n > 0))) return null;
  const values = Array.from(counts.values());
  const divisor = values.every(Number.isInteger) ? values.reduce(gcd) : Math.min(...values); // Na0.5Cl0.5 = NaCl
  return Array.from(counts.keys())
    .sort()
    .map((element) => `${element}${+(counts.get(element) / divisor).toFixed(6)}`)
    .join("");
}

async function loadIndex() {
  let points;
  try {
    points = await requestJSON(paths().points);
  } catch (e) {
    if (e.status === 404) {
      e.message =
        "looking up a formula uses the materials map's index, and no map is computed yet; " +
        "search by a material id (e.g. cod:1000000) or upload a file";
    }
    throw e;
  }
  const index = new Map();
  points.material_id.forEach((id, i) => {
    const key = formulaKey(points.formula[i]);
    if (!key) return;
    if (!index.has(key)) index.set(key, []);
    index.get(key).push(id);
  });
  for (const ids of index.values()) ids.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  return index;
}

/** The ids of the stored materials with this formula (any order of elements, any multiple). */
export async function materialsOfFormula(formula) {
  const key = formulaKey(formula);
  if (!key) throw new Error(`“${formula}” is not a chemical formula (e.g. LiCoO2) nor an id (e.g. cod:1000000)`);
  if (!state.formulaIndex) {
    state.formulaIndex = loadIndex();
    state.formulaIndex.catch(() => {
      state.formulaIndex = null; // asked again next time (the map may be computed by then)
    });
  }
  return (await state.formulaIndex).get(key) || [];
}
