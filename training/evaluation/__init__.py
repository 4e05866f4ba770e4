"""Evaluation of a dual-encoder checkpoint: is its embedding a better search key than hand-crafted ones?

The paper's evidence, made repeatable for any model the training package produces:

* :mod:`~training.evaluation.metrics`: exact-L2 cross-modal top-k retrieval, leave-one-out
  R-precision and precision@k of same-family neighbours;
* :mod:`~training.evaluation.baselines`: sine Coulomb matrix and Ewald sum matrix spectra, and the
  Materials Project's CrystalNN site-statistics fingerprint;
* :mod:`~training.evaluation.robustness`: distances to supercells, permuted, strained and displaced
  copies versus the distance to the nearest other material;
* :mod:`~training.evaluation.probes`: few-shot random-forest probes, leave-groups-out;
* :mod:`~training.evaluation.data`: the labelled structures (corpus test split, AFLOW prototypes, CIFs);
* :mod:`~training.evaluation.evaluate` runs them all; :mod:`~training.evaluation.report` writes JSON,
  Markdown and plots; :mod:`~training.evaluation.cli` is ``matconcept evaluate``.
"""
