"""The dual encoder: one object holding the structure (CGCNN) and XRD (1D CNN) encoders.

Both map a material into the same 1024-d Euclidean space, trained so that a structure and its own
simulated powder pattern land together (Suzuki et al., MLST 3, 045034, 2022).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch_geometric.data import Batch

from matconcept.encoders.cgcnn import CrystalEncoder
from matconcept.encoders.graph import GraphSettings
from matconcept.encoders.structure_type import StructureTypeConfig, StructureTypeEncoder, StructureTypeSettings
from matconcept.encoders.xrd import XRDSettings
from matconcept.encoders.xrd_cnn import XRDEncoder


class ModelConfig(BaseModel):
    """Everything needed to rebuild a model and feed it the inputs it was trained on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    embedding_dim: int = Field(default=1024, gt=0)
    atom_features: int = 92
    hidden: int = Field(default=64, description="atom embedding size inside the CGCNN convolutions")
    n_conv: int = 3
    crystal_head: tuple[int, ...] = (1024, 1024, 1024)
    """Hidden sizes of the crystal head before the output layer (64→1024→1024→1024→out)."""
    xrd_channels: int = 80
    xrd_head: tuple[int, ...] = (1024, 1024)
    """Hidden sizes of the XRD head before the output layer (880→1024→1024→out)."""
    gaussian_step: float = 0.2
    atom_dropout: float = 0.0
    graph: GraphSettings = Field(default_factory=GraphSettings)
    xrd: XRDSettings = Field(default_factory=XRDSettings)
    structure_type: StructureTypeConfig | None = Field(
        default=None, description="the chemistry-blind structure-type encoder; None in checkpoints made before it"
    )


class DualEncoder(nn.Module):
    """Structure and XRD encoders sharing one embedding space."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        self.crystal = CrystalEncoder(
            atom_features=c.atom_features,
            hidden=c.hidden,
            n_conv=c.n_conv,
            head=(*c.crystal_head, c.embedding_dim),
            gaussian_step=c.gaussian_step,
            cutoff=c.graph.radius,
            atom_dropout=c.atom_dropout,
        )
        self.xrd = XRDEncoder(points=c.xrd.n_bins, channels=c.xrd_channels, head=(*c.xrd_head, c.embedding_dim))
        self.structure_type: StructureTypeEncoder | None = None
        if c.structure_type is not None:
            if c.structure_type.graph != StructureTypeSettings():
                # The featurizer builds role graphs with the default settings only (one graph per material).
                raise ValueError(f"structure-type graph settings {c.structure_type.graph} are not the featurizer's")
            self.structure_type = StructureTypeEncoder(c.structure_type)

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """(crystal embeddings, XRD embeddings) of a batch whose graphs carry ``xrd`` patterns."""
        return self.crystal(batch), self.xrd(batch.xrd)
