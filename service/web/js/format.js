/* Text and HTML formatting of formulas, symbols, ids and distances (always escaped). */

export function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

/** "BaTiO3" -> "BaTiO<sub>3</sub>" (escaped). */
export function formulaHtml(formula) {
  return escapeHtml(formula || "?").replace(/(\d+(?:\.\d+)?)/g, "<sub>$1</sub>");
}

/** Hermann–Mauguin symbol with its screw axes as subscripts: "P6_3/mmc" -> "P6<sub>3</sub>/mmc". */
export function symbolHtml(symbol) {
  return escapeHtml(symbol).replace(/_(\d)/g, "<sub>$1</sub>");
}

/** Three significant digits; exponent form below 1e-3 (a material found as itself: ~1e-6). */
export function formatDistance(d) {
  if (typeof d !== "number" || !isFinite(d)) return "–";
  return d !== 0 && Math.abs(d) < 1e-3 ? d.toExponential(2) : d.toPrecision(3);
}

/** "o" -> "O", " fe " -> "Fe"; "" when empty. */
export function normaliseElement(text) {
  const t = (text || "").trim();
  return t ? t.charAt(0).toUpperCase() + t.slice(1).toLowerCase() : "";
}
