"""What training and the service share: CIF → Structure → (crystal graph, XRD pattern) → dual encoder.

Entry points: :func:`encoders.structure_io.read_structure` (checked input),
:class:`encoders.featurize.Featurizer` (graph + simulated XRD), :class:`encoders.embedder.Embedder`
(batched inference) and :func:`encoders.checkpoint.resolve_model` (which model to use).
"""
