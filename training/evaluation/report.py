"""Evaluation output: ``report.json`` (every figure), ``report.md`` (tables) and PNG plots.

Plots use matplotlib's Agg backend, imported only here and only when a report is written, so the
CLI and tests that only need numbers never load it.
"""

from __future__ import annotations

import math
from pathlib import Path

from matconcept.training.evaluation.evaluate import EMBEDDING, EvaluationReport

JSON_FILE = "report.json"
MARKDOWN_FILE = "report.md"
PLOTS = {
    "retrieval": "retrieval.png",
    "precision": "precision_at_k.png",
    "probes": "probes.png",
}
FIGURE_DPI = 110


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


RATIO_CAP = 1000.0
"""Ratios above this are printed as ">1000": the method puts other materials at (almost) zero distance."""


def _ratio(value: float) -> str:
    return f">{RATIO_CAP:.0f}" if not value < RATIO_CAP else f"{value:.3f}"


def _plot_retrieval(report: EvaluationReport, path: Path) -> None:
    import matplotlib.pyplot as plt

    r = report.retrieval
    ks = list(range(1, len(r.xrd_to_structure) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(ks, r.xrd_to_structure, "o-", label="XRD → structure")
    ax.plot(ks, r.structure_to_xrd, "s-", label="structure → XRD")
    ax.plot(ks, r.chance, "k--", label="chance")
    ax.set(xlabel="k", ylabel="top-k accuracy", title=f"Cross-modal retrieval among {r.n}", ylim=(0, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def _plot_precision(report: EvaluationReport, path: Path) -> None:
    import matplotlib.pyplot as plt

    kinds = list(report.neighbour_quality)
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(4 * max(1, len(kinds)), 3.5), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=False):
        chance = None
        for method, q in report.neighbour_quality[kind].items():
            ks = sorted(q.precision_at_k, key=int)
            ax.plot([int(k) for k in ks], [q.precision_at_k[k] for k in ks], "o-", label=method)
            chance = q.chance_precision
        if chance is not None:
            ax.axhline(chance, color="k", ls="--", label="chance")
        ax.set(xscale="log", xlabel="k", ylabel="precision@k", title=f"same {kind}", ylim=(0, 1.02))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def _plot_probes(report: EvaluationReport, path: Path) -> None:
    import matplotlib.pyplot as plt

    probes = report.probes
    fig, axes = plt.subplots(1, max(1, len(probes)), figsize=(4 * max(1, len(probes)), 3.5), squeeze=False)
    for ax, probe in zip(axes[0], probes, strict=False):
        for method, scores in probe.scores.items():
            pts = [(s, v) for s, v in zip(probe.sizes, scores, strict=True) if v is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", label=method)
        pts = [(s, c) for s, c in zip(probe.sizes, probe.chance, strict=True) if c is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), "k--", label="chance")
        ax.set(xscale="log", xlabel="training examples per class", ylabel=probe.metric, title=probe.target)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def markdown(report: EvaluationReport, plots: dict[str, str] | None = None) -> str:
    """The short human report: dataset, then one table per evaluation, plots linked beside them."""
    plots = plots or {}
    d = report.dataset
    lines = [
        f"# Evaluation of `{report.model_id}`",
        "",
        f"{report.model_note}".strip(),
        "",
        f"Data: {d.source}" + (f", split `{d.split}`" if d.split else "") + f": {d.n_items} structures in "
        f"{d.n_groups} prototype groups; {d.n_compared} compared with the baselines. "
        f"{len(d.skipped)} inputs skipped.",
        "",
        "## Cross-modal retrieval (exact L2, among all structures)",
        "",
        "| k | XRD → structure | structure → XRD | chance |",
        "|---|---|---|---|",
    ]
    r = report.retrieval
    for i, k in enumerate(range(1, len(r.xrd_to_structure) + 1)):
        if k in (1, 5, 10) or k == len(r.xrd_to_structure):
            cells = (r.xrd_to_structure[i], r.structure_to_xrd[i], r.chance[i])
            lines.append(f"| {k} | " + " | ".join(_fmt(c) for c in cells) + " |")
    if "retrieval" in plots:
        lines += ["", f"![retrieval]({plots['retrieval']})"]
    lines += ["", "## Neighbour quality (leave-one-out, same family among nearest neighbours)", ""]
    for kind, methods in report.neighbour_quality.items():
        ks = sorted(next(iter(methods.values())).precision_at_k, key=int)
        lines += [
            f"**same {kind}** ({next(iter(methods.values())).n_queries} queries, "
            f"{next(iter(methods.values())).n_families} families)",
            "",
            "| method | R-precision | " + " | ".join(f"P@{k}" for k in ks) + " |",
            "|---|---|" + "---|" * len(ks),
        ]
        for method, q in methods.items():
            name = f"**{method}**" if method == EMBEDDING else method
            cells = " | ".join(_fmt(q.precision_at_k[k]) for k in ks)
            lines.append(f"| {name} | {_fmt(q.r_precision)} | {cells} |")
        chance = next(iter(methods.values())).chance_precision
        lines += [f"| chance | {_fmt(chance)} | " + " | ".join(_fmt(chance) for _ in ks) + " |", ""]
    if "precision" in plots:
        lines += [f"![precision@k]({plots['precision']})", ""]
    lines += [
        "## Robustness",
        "",
        "Per perturbation: the fraction of structures whose variant is closer to them than their nearest",
        "different material (other reduced formula) is, then the median of d(variant) / d(nearest other).",
        "",
    ]
    if report.robustness:
        names = list(next(iter(report.robustness.values())).perturbations)
        lines += [
            "| method | " + " | ".join(names) + " | median d(nearest other) |",
            "|---|" + "---|" * (len(names) + 1),
        ]
        for method, rob in report.robustness.items():
            cells = " | ".join(
                f"{_fmt(rob.perturbations[n].closer_than_nearest, 2)} ({_ratio(rob.perturbations[n].ratio_median)})"
                for n in names
            )
            lines.append(f"| {method} | {cells} | {rob.median_nearest_other:.3g} |")
        lines.append("")
    if report.notes:
        lines += ["## Reading these numbers", "", *[f"- {note}" for note in report.notes], ""]
    lines += ["## Few-shot concept probes (random forest, leave-groups-out)", ""]
    for probe in report.probes:
        lines += [
            f"**{probe.target}** ({probe.metric}, {probe.n_items} structures, {probe.repeats} group splits)",
            "",
            "| method | " + " | ".join(f"n={s}" for s in probe.sizes) + " |",
            "|---|" + "---|" * len(probe.sizes),
        ]
        for method, scores in probe.scores.items():
            lines.append(f"| {method} | " + " | ".join(_fmt(v) for v in scores) + " |")
        lines += ["| chance | " + " | ".join(_fmt(c) for c in probe.chance) + " |", ""]
    if "probes" in plots:
        lines += [f"![probes]({plots['probes']})", ""]
    if report.property_probes:
        lines += ["## Property probes (distance-weighted k-NN regression, folds split the families)", ""]
        lines += ["| property | structures | method | R² | MAE |", "|---|---|---|---|---|"]
        for pp in report.property_probes:
            for method in pp.r2:
                lines.append(f"| {pp.target} | {pp.n_items} | {method} | {pp.r2[method]:.3f} | {pp.mae[method]:.3g} |")
            lines.append(f"| {pp.target} | {pp.n_items} | predicting the mean | 0 | {pp.mean_mae:.3g} |")
        lines.append("")
    lines += ["Seconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()), ""]
    return "\n".join(lines)


def write_report(report: EvaluationReport, out: Path, plots: bool = True) -> dict[str, Path]:
    """Write the JSON, the Markdown and (unless ``plots`` is False) the PNGs into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"json": out / JSON_FILE}
    written["json"].write_text(report.model_dump_json(indent=2))
    names: dict[str, str] = {}
    if plots:
        import matplotlib

        matplotlib.use("Agg")
        for key, draw in (("retrieval", _plot_retrieval), ("precision", _plot_precision), ("probes", _plot_probes)):
            draw(report, out / PLOTS[key])
            names[key] = PLOTS[key]
            written[key] = out / PLOTS[key]
    written["markdown"] = out / MARKDOWN_FILE
    written["markdown"].write_text(markdown(report, names))
    return written
