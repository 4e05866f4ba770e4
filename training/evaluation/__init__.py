"""Evaluation of a dual-encoder checkpoint: is its embedding a better search key than hand-crafted ones?

The paper's evidence, made repeatable for any model the training package produces:

* :mod:`~matconcept.training.evaluation.metrics`: exact-L2 cross-modal top-k retrieval, leave-one-out
  R-precision and precision@k of same-family neighbours;
* :mod:`~matconcept.training.evaluation.baselines`: sine Coulomb matrix and Ewald sum matrix spectra, and the
  Materials Project's CrystalNN site-statistics fingerprint;
* :mod:`~matconcept.training.evaluation.robustness`: distances to supercells, permuted, strained and displaced
  copies versus the distance to the nearest other material;
* :mod:`~matconcept.training.evaluation.probes`: few-shot random-forest probes, leave-groups-out;
* :mod:`~matconcept.training.evaluation.items`: the labelled structures (corpus test split, AFLOW prototypes, CIFs);
* :mod:`~matconcept.training.evaluation.evaluate` runs them all;
  :mod:`~matconcept.training.evaluation.report` writes JSON, Markdown and plots;
  :mod:`~matconcept.service.cli.train` holds ``matconcept evaluate``.
"""
