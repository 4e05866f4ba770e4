"""Checkpoint format: a directory with ``model.safetensors`` + ``config.json`` (+ a README model card).

The model id is a content hash of the config and the weights, so a store can keep one collection
per model and never mix vectors from two models. Weights may be saved as float16/bfloat16 to keep
the shipped default small; they are loaded back as float32 on any device.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
from matconcept.encoders.structure_type import StructureTypeEncoder

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "default"
RANDOM_INIT_SEED = 0

SaveDtype = Literal["float32", "float16", "bfloat16"]


class CheckpointInfo(BaseModel):
    """What ``config.json`` holds: the model's config plus provenance."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    model_id: str | None = Field(default=None, description="content hash of `model` and the weights file")
    model: ModelConfig
    weights_dtype: SaveDtype = "float32"
    training: dict[str, Any] = Field(default_factory=dict, description="corpus, epochs, metrics...")


class LoadedModel(BaseModel):
    """A model ready for inference, with the id that names its vectors."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: DualEncoder
    model_id: str
    info: CheckpointInfo
    path: Path | None = None


def _config_json(config: ModelConfig) -> str:
    return config.model_dump_json(exclude={"structure_type"} if config.structure_type is None else None)


def _content_hash(config: ModelConfig, weights: bytes) -> str:
    """Hash of what determines the vectors: architecture + featurizer settings and the weights.

    Provenance in ``training`` (metrics, notes) is left out, so editing a model card keeps the id. A
    model without a structure-type encoder hashes its config without that field, so checkpoints made
    before the field existed keep their ids.
    """
    digest = hashlib.sha256()
    digest.update(_config_json(config).encode())
    digest.update(weights)
    return "mc-" + digest.hexdigest()[:16]


def save_checkpoint(
    model: DualEncoder,
    directory: str | Path,
    *,
    dtype: SaveDtype = "float32",
    training: dict[str, Any] | None = None,
) -> str:
    """Write ``model`` to ``directory`` and return its model id."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = getattr(torch, dtype)
    tensors = {
        k: (v.detach().to("cpu", target) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format_version": str(FORMAT_VERSION)})
    model_id = _content_hash(model.config, (directory / WEIGHTS_FILE).read_bytes())
    info = CheckpointInfo(model_id=model_id, model=model.config, weights_dtype=dtype, training=training or {})
    (directory / CONFIG_FILE).write_text(info.model_dump_json(indent=2))
    return model_id


def load_checkpoint(directory: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint directory onto ``device`` in eval mode."""
    directory = Path(directory)
    config_json = (directory / CONFIG_FILE).read_bytes()
    weights = (directory / WEIGHTS_FILE).read_bytes()
    info = CheckpointInfo.model_validate_json(config_json)
    model_id = _content_hash(info.model, weights)
    if info.model_id is not None and info.model_id != model_id:
        raise ValueError(
            f"{directory}: weights or config changed since saving (config.json says {info.model_id}, "
            f"content hashes to {model_id}); refusing to load a checkpoint whose vectors would be mislabelled"
        )
    model = DualEncoder(info.model)
    state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state)
    model.to(device).eval()
    return LoadedModel(model=model, model_id=model_id, info=info, path=directory)


def random_model(config: ModelConfig | None = None) -> LoadedModel:
    """A seeded, untrained model (its id is the hash of its weights, reproducible per torch version)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = DualEncoder(config).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    digest = hashlib.sha256(_config_json(model.config).encode())
    for k in sorted(state):
        digest.update(k.encode())
        digest.update(state[k].numpy().tobytes())
    info = CheckpointInfo(model=model.config, training={"note": "random initialisation, untrained"})
    return LoadedModel(model=model, model_id="mc-random-" + digest.hexdigest()[:10], info=info)


def load_default_model(device: str | torch.device = "cpu") -> LoadedModel:
    """The shipped default checkpoint, or a seeded random model if none ships yet."""
    if (DEFAULT_CHECKPOINT / WEIGHTS_FILE).exists():
        return load_checkpoint(DEFAULT_CHECKPOINT, device)
    logger.warning("no trained default model at %s; using a seeded random model", DEFAULT_CHECKPOINT)
    loaded = random_model()
    loaded.model.to(device)
    return loaded


def resolve_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load ``path`` if given, else the default: the one way every entry point picks its model."""
    return load_checkpoint(path, device) if path else load_default_model(device)


def with_structure_type(model: DualEncoder, encoder: StructureTypeEncoder) -> DualEncoder:
    """A copy of ``model`` that also carries ``encoder`` (how a trained structure-type encoder ships).

    The concept and XRD weights are copied unchanged, so their vectors stay the same; the model id
    changes, because it covers every encoder a checkpoint holds.
    """
    config = model.config.model_copy(update={"structure_type": encoder.config})
    combined = DualEncoder(config)
    combined.crystal.load_state_dict(model.crystal.state_dict())
    combined.xrd.load_state_dict(model.xrd.state_dict())
    assert combined.structure_type is not None
    combined.structure_type.load_state_dict(encoder.state_dict())
    return combined.eval()
