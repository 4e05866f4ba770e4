"""Training: corpus building, feature cache, loss, augmentations, trainer and model card.

* :mod:`matconcept.training.corpus` — ``matconcept corpus build``: seeds shipped in dependencies, chemically
  sensible substitutions, CIF directories/COD mirrors, Materials Project documents; prototype-group
  splits.
* :mod:`matconcept.training.cache` — featurized graphs + sparse XRD patterns in reusable shards.
* :mod:`matconcept.training.batches` — batches straight from the cache tensors, structure-side invariances.
* :mod:`matconcept.training.loss` — the paper's bidirectional triplet loss and a same-prototype term.
* :mod:`matconcept.training.augment` — diffractometer-like XRD augmentation.
* :mod:`matconcept.training.trainer` — ``matconcept train``: resumable, seeded, DDP-capable training loop.
* :mod:`matconcept.training.modelcard` — export of the shipped float16 default model with its card.
"""
