"""What training and the service share: CIF → Structure → (crystal graph, XRD pattern) → dual encoder.

Entry points: :func:`matconcept.encoders.structure_io.read_structure` (checked input),
:class:`matconcept.encoders.featurize.Featurizer` (graph + simulated XRD),
:class:`matconcept.encoders.embedder.Embedder` (batched inference) and
:func:`matconcept.encoders.checkpoint.resolve_model` (which model to use).
"""
