"""Inference: featurized materials or XRD patterns → numpy embeddings, in batches, on CPU or GPU.

The one inference path shared by the CLI, the ingest pipeline, the service and evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pymatgen.core import Structure
from torch_geometric.data import Batch, Data

from matconcept.encoders.checkpoint import LoadedModel, resolve_model
from matconcept.encoders.featurize import Featurizer

DEFAULT_BATCH = 256


def default_device() -> torch.device:
    """CUDA when the node has a GPU, otherwise CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def normalise_patterns(patterns: np.ndarray) -> np.ndarray:
    """Divide each pattern by its own maximum (the paper's input scaling); all-zero rows stay zero."""
    patterns = np.asarray(patterns, dtype=np.float32)
    if patterns.ndim == 1:
        patterns = patterns[None, :]
    peak = patterns.max(axis=1, keepdims=True)
    return np.divide(patterns, peak, out=np.zeros_like(patterns), where=peak > 0)


class Embedder:
    """A loaded dual encoder plus the featurizer that matches it.

    Args:
        loaded: The model (see :func:`matconcept.encoders.checkpoint.resolve_model`); default model if None.
        device: Where to run; CUDA when available by default.
        batch_size: Materials or patterns per forward pass.
    """

    def __init__(
        self,
        loaded: LoadedModel | None = None,
        device: str | torch.device | None = None,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        self.loaded = loaded or resolve_model(None, self.device)
        self.model = self.loaded.model.to(self.device).eval()
        self.featurizer = Featurizer.for_model(self.loaded.info.model)
        self.batch_size = batch_size

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    @property
    def dim(self) -> int:
        return self.loaded.info.model.embedding_dim

    @property
    def vector_names(self) -> tuple[str, ...]:
        """The vectors this model gives a material: ``crystal``, ``xrd`` and, with that encoder, ``structure``."""
        return ("crystal", "xrd", "structure") if self.has_structure_type else ("crystal", "xrd")

    @torch.inference_mode()
    def embed(self, graphs: Sequence[Data], names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The vectors ``names`` (default :attr:`vector_names`) of featurized materials, float32 (len(graphs), d).

        Each chunk is collated once for every encoder, and an encoder not asked for does not run: a
        structure search needs no XRD vector, whose CNN over the 5000-bin pattern was the largest
        part of a single query's forward pass. ``xrd`` reads the graphs' simulated patterns
        (:meth:`~matconcept.encoders.featurize.Featurizer.featurize` with ``pattern=True``).

        Raises:
            ValueError: An unknown name, ``structure`` for a model without that encoder, or ``xrd`` for a
                graph without its pattern.
        """
        names = tuple(names or self.vector_names)
        unknown = [n for n in names if n not in self.vector_names]
        if unknown:
            raise ValueError(
                f"model {self.model_id} gives no {', '.join(unknown)} vectors (it has {self.vector_names})"
            )
        if "xrd" in names and any("xrd" not in g for g in graphs):
            raise ValueError("an xrd vector needs the simulated pattern: featurize with pattern=True")
        encoders = {
            "crystal": self.model.crystal,
            "xrd": lambda b: self.model.xrd(b.xrd),
            "structure": self.model.structure_type,
        }
        out: dict[str, list[np.ndarray]] = {n: [] for n in names}
        for start in range(0, len(graphs), self.batch_size):
            batch = Batch.from_data_list(list(graphs[start : start + self.batch_size])).to(self.device)
            for name in names:
                out[name].append(encoders[name](batch).float().cpu().numpy())
        sizes = {"crystal": self.dim, "xrd": self.dim, "structure": self.structure_dim}
        return {n: np.concatenate(v) if v else np.zeros((0, sizes[n]), dtype=np.float32) for n, v in out.items()}

    def embed_graphs(self, graphs: Sequence[Data]) -> tuple[np.ndarray, np.ndarray]:
        """(crystal vectors, XRD vectors), each float32 (len(graphs), dim), of featurized materials."""
        vectors = self.embed(graphs, ("crystal", "xrd"))
        return vectors["crystal"], vectors["xrd"]

    @property
    def has_structure_type(self) -> bool:
        """Whether the model has a structure-type encoder (checkpoints made before it have none)."""
        return self.model.structure_type is not None

    @property
    def structure_dim(self) -> int | None:
        c = self.loaded.info.model.structure_type
        return c.dim if c is not None else None

    def embed_structure_types(self, graphs: Sequence[Data]) -> np.ndarray:
        """Structure-type vectors (len(graphs), structure_dim) of featurized materials.

        Raises:
            ValueError: The model has no structure-type encoder.
        """
        if not self.has_structure_type:
            raise ValueError(f"model {self.model_id} has no structure-type encoder; use a checkpoint that has one")
        return self.embed(graphs, ("structure",))["structure"]

    @torch.inference_mode()
    def embed_patterns(self, patterns: np.ndarray) -> np.ndarray:
        """XRD-encoder vectors (n, dim) of patterns on the model's 2θ grid (n, n_bins)."""
        patterns = normalise_patterns(patterns)
        expected = self.loaded.info.model.xrd.n_bins
        if patterns.shape[1] != expected:
            raise ValueError(f"patterns have {patterns.shape[1]} points, the model expects {expected}")
        out = []
        for start in range(0, len(patterns), self.batch_size):
            chunk = torch.from_numpy(patterns[start : start + self.batch_size]).to(self.device)
            out.append(self.model.xrd(chunk).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    def embed_structures(self, structures: Sequence[Structure]) -> tuple[np.ndarray, np.ndarray]:
        """Featurize and embed checked structures (see :func:`matconcept.encoders.structure_io.read_structure`)."""
        return self.embed_graphs([self.featurizer.featurize(s) for s in structures])
