"""The structure-type encoder: a crystal → a vector that is blind to chemistry and to scale.

The concept encoder (:mod:`matconcept.encoders.cgcnn`) sees elements, so it groups materials by
chemistry: rock salts of different elements land far apart. This encoder sees only the arrangement:

* every site is alike except for its *role*: the share of the cell its species occupies and where the
  species ranks by electronegativity among the material's species (so NaCl and MgO, both "cation 1/2,
  anion 1/2", look the same, while an anti-structure, where the roles swap sublattices, does not);
* each edge carries its length divided by the cell's (V/N)^(1/3), so a strained or substituted copy of
  a structure (same arrangement, other lattice constants) gives the same graph, and whether its two
  ends hold the same species (which tells CsCl from bcc, and NiAs from its inverse).

Neighbours are every periodic image within ``cutoff`` normalised units (no fixed neighbour count, so
the graph does not depend on the supercell or on ties at a count boundary). The network is the CGCNN
convolution on that graph, mean- and max-pooled (both are the same for any supercell), and an MLP
to ``dim``; vectors are L2-normalised, so Euclidean distance ranks like cosine.

The role graph itself is made in :mod:`matconcept.encoders.role_graph` (numpy only, so that processes
that only featurize never import torch); this module turns it into tensors and encodes it.

Shapes:
    ``type_x`` (|V|, ROLE_FEATURES), ``type_edge_index`` (2, |E|) as (neighbour j, centre i),
    ``type_edge_dist`` (|E|,) in units of (V/N)^(1/3), ``type_edge_same`` (|E|,) 0/1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import global_max_pool, global_mean_pool

from matconcept.encoders.cgcnn import CGCNNConv, GaussianDistance, mlp_head
from matconcept.encoders.graph import set_graph_attributes
from matconcept.encoders.role_graph import ROLE_FEATURES, StructureTypeSettings, role_graph_arrays
from matconcept.encoders.role_graph import site_roles as site_roles  # the role features, imported from here too


class StructureTypeConfig(BaseModel):
    """Everything needed to rebuild the structure-type encoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dim: int = Field(default=128, gt=0)
    hidden: int = 32
    n_conv: int = 3
    head: tuple[int, ...] = (256,)
    gaussian_step: float = 0.2
    graph: StructureTypeSettings = Field(default_factory=StructureTypeSettings)


def structure_type_graph(structure: Structure, settings: StructureTypeSettings | None = None) -> dict[str, Tensor]:
    """The ``type_*`` attributes of one structure (added to its crystal graph by the featurizer)."""
    return {key: torch.from_numpy(value) for key, value in role_graph_arrays(structure, settings).items()}


def add_structure_type_graph(graph: Data, structure: Structure, settings: StructureTypeSettings | None = None) -> Data:
    """``graph`` with the structure-type attributes set (same nodes as the crystal graph)."""
    return set_graph_attributes(graph, structure_type_graph(structure, settings))


class StructureTypeEncoder(nn.Module):
    """Role graph → L2-normalised structure-type vector.

    Shapes:
        batch with type_x (|V|, 4), type_edge_index (2, |E|), type_edge_dist (|E|,), type_edge_same (|E|,),
        batch (|V|,) → (B, dim).
    """

    def __init__(self, config: StructureTypeConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or StructureTypeConfig()
        self.distance = GaussianDistance(0.0, c.graph.cutoff, c.gaussian_step)
        edge_dim = 2 * self.distance.num_centers
        self.embed = nn.Linear(ROLE_FEATURES, c.hidden)
        self.convs = nn.ModuleList(CGCNNConv(c.hidden, edge_dim) for _ in range(c.n_conv))
        self.head = mlp_head([2 * c.hidden, *c.head, c.dim])

    def forward(self, data: Batch | Data) -> Tensor:
        rbf = self.distance(data.type_edge_dist)
        same = data.type_edge_same.unsqueeze(-1)
        # Same-species and other-species neighbours at one distance are different channels.
        edge_attr = torch.cat([rbf * same, rbf * (1 - same)], dim=-1)
        x = self.embed(data.type_x)
        for conv in self.convs:
            x = conv(x, data.type_edge_index, edge_attr)
        batch = getattr(data, "batch", None)  # None: one graph, which PyG's pools handle
        pooled = torch.cat([global_mean_pool(x, batch), global_max_pool(x, batch)], dim=-1)
        return F.normalize(self.head(pooled), dim=-1)
