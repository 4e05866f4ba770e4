"""One material → one PyG ``Data`` carrying every input of the model: crystal graph, XRD pattern, role graph.

Keeping the simulated pattern on the graph (as ``xrd``, shape (1, n_bins)) lets PyG batch both
inputs of the dual encoder in one collate, and lets the training cache store one object per
material. The structure-type encoder's role graph rides along as ``type_*`` attributes over the
same nodes (see :mod:`matconcept.encoders.structure_type`); PyG offsets ``type_edge_index`` like
``edge_index`` when batching, because its name ends in ``index``.

Featurizing itself needs no torch: :meth:`Featurizer.arrays` gives the attributes as numpy arrays,
and only :meth:`Featurizer.featurize` (through :func:`~matconcept.encoders.graph.graph_data`) imports
torch and PyG, so ingest's pool workers, which send arrays, start without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pymatgen.core import Structure

from matconcept.encoders.graph import GraphFeaturizer, GraphSettings, graph_data
from matconcept.encoders.role_graph import role_graph_arrays
from matconcept.encoders.xrd import XRDSettings, XRDSimulator
from matconcept.encoders.xrd.simulate import Reflections

if TYPE_CHECKING:
    from torch_geometric.data import Data

    from matconcept.encoders.dual_encoder import ModelConfig


class Featurizer:
    """Structure → (graph, simulated XRD) with the settings a model was trained with."""

    def __init__(self, graph: GraphSettings | None = None, xrd: XRDSettings | None = None) -> None:
        self.graph = GraphFeaturizer(graph)
        self.xrd = XRDSimulator(xrd)

    @classmethod
    def for_model(cls, config: ModelConfig) -> Featurizer:
        return cls(config.graph, config.xrd)

    def pattern(self, structure: Structure) -> np.ndarray:
        """The max-normalised simulated powder pattern, float32 (n_bins,)."""
        return self.xrd.pattern(structure)

    def featurize(self, structure: Structure, pattern: bool = True) -> Data:
        """The crystal graph of ``structure`` with its simulated pattern (``xrd``) and role graph (``type_*``).

        ``pattern=False`` leaves the pattern out, for a query that needs no XRD vector (a structure search
        by concept or structure type): the simulation is then skipped.
        """
        return graph_data(self.arrays(structure, pattern))

    def arrays(self, structure: Structure, pattern: bool = True) -> dict[str, np.ndarray | int]:
        """:meth:`featurize`'s attributes as numpy arrays (and ``num_nodes``), in the graph's order."""
        arrays = self.graph.arrays(structure)
        if pattern:
            arrays["xrd"] = self.pattern(structure)[None, :]
        arrays.update(role_graph_arrays(structure))
        return arrays

    def arrays_with_reflections(
        self, structure: Structure, simulator: XRDSimulator
    ) -> tuple[dict[str, np.ndarray | int], Reflections]:
        """:meth:`arrays` and ``simulator``'s reflections of ``structure`` from one structure-factor
        computation (:meth:`XRDSimulator.reflections_and_pattern`): ingest stores both, the graph's
        vectors and the reflections as the point's peak list."""
        arrays = self.graph.arrays(structure)
        reflections, pattern = simulator.reflections_and_pattern(structure, self.xrd)
        arrays["xrd"] = pattern[None, :]
        arrays.update(role_graph_arrays(structure))
        return arrays, reflections
