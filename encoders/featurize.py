"""One material → one PyG ``Data`` carrying every input of the model: crystal graph, XRD pattern, role graph.

Keeping the simulated pattern on the graph (as ``xrd``, shape (1, n_bins)) lets PyG batch both
inputs of the dual encoder in one collate, and lets the training cache store one object per
material. The structure-type encoder's role graph rides along as ``type_*`` attributes over the
same nodes (see :mod:`matconcept.encoders.structure_type`); PyG offsets ``type_edge_index`` like
``edge_index`` when batching, because its name ends in ``index``.
"""

from __future__ import annotations

import numpy as np
import torch
from pymatgen.core import Structure
from torch_geometric.data import Data

from matconcept.encoders.dual_encoder import ModelConfig
from matconcept.encoders.graph import GraphFeaturizer, GraphSettings, set_graph_attributes
from matconcept.encoders.structure_type import add_structure_type_graph
from matconcept.encoders.xrd import XRDSettings, XRDSimulator
from matconcept.encoders.xrd.simulate import Reflections


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
        data = self.graph.featurize(structure)
        if pattern:
            set_graph_attributes(data, {"xrd": torch.from_numpy(self.pattern(structure)).unsqueeze(0)})
        return add_structure_type_graph(data, structure)

    def featurize_with_reflections(self, structure: Structure, simulator: XRDSimulator) -> tuple[Data, Reflections]:
        """:meth:`featurize` and ``simulator``'s reflections of ``structure`` from one structure-factor
        computation (:meth:`XRDSimulator.reflections_and_pattern`): ingest stores both, the graph's
        vectors and the reflections as the point's peak list."""
        data = self.graph.featurize(structure)
        reflections, pattern = simulator.reflections_and_pattern(structure, self.xrd)
        set_graph_attributes(data, {"xrd": torch.from_numpy(pattern).unsqueeze(0)})
        return add_structure_type_graph(data, structure), reflections
