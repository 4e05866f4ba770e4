"""The bidirectional triplet loss of Suzuki et al. (2022), vectorised, plus a prototype term.

For a batch of B pairs (crystal cᵢ, pattern xᵢ) with exact Euclidean distances
:math:`D_{ij} = \\lVert x_i - c_j \\rVert`, the XRD→crystal direction takes, for each anchor i, the
candidates j ≠ i with :math:`D_{ij} < D_{ii} + m` (negatives that still give a positive loss),
draws one uniformly at random and pays :math:`\\max(0, D_{ii} - D_{ij} + m)`; the mean is over
anchors that have a candidate. The crystal→XRD direction does the same on :math:`D^T`, and the two
directions are averaged (the published code's ``loss = (l1 + l2) / 2``).

With ``groups`` (each row's prototype group), a negative is drawn only among *other* groups: in a
substitution corpus the violators of the margin are mostly the anchor's own substitution variants,
and pushing them apart is what splits a structure family by chemistry (issue 17). They are neither
pushed apart nor pulled together then; the own pair stays the only positive.

The random draw is an argmax of uniform scores over the candidates, so the whole loss is a few
(B, B) tensor operations and a test can pass the scores to compare with a loop.
"""

from __future__ import annotations

import torch
from torch import Tensor

MARGIN = 1.0
"""The paper's margin (embeddings are not normalised, so 1 is on the scale of the distances)."""


def _one_direction(
    dist: Tensor, positive: Tensor, valid_pos: Tensor, negative_ok: Tensor, margin: float, scores: Tensor
) -> Tensor:
    """Mean over anchors with a candidate of relu(d⁺ − d⁻ + m), d⁻ drawn uniformly among candidates.

    Shapes: dist (B, B), positive (B,), valid_pos (B,) bool, negative_ok (B, B) bool, scores (B, B).
    """
    candidates = negative_ok & (dist < positive.unsqueeze(1) + margin) & valid_pos.unsqueeze(1)
    has = candidates.any(dim=1)
    if not bool(has.any()):
        return dist.sum() * 0.0  # keeps the graph (and DDP) happy with a zero loss
    pick = torch.where(candidates, scores, torch.full_like(scores, -1.0)).argmax(dim=1)
    negative = dist.gather(1, pick.unsqueeze(1)).squeeze(1)
    losses = torch.relu(positive - negative + margin)
    return losses[has].mean()


def triplet_loss(
    xrd: Tensor,
    crystal: Tensor,
    margin: float = MARGIN,
    scores: Tensor | None = None,
    generator: torch.Generator | None = None,
    groups: Tensor | None = None,
) -> Tensor:
    """Bidirectional triplet loss between paired embeddings (row i of each is one material).

    Args:
        xrd: XRD embeddings, (B, D).
        crystal: Crystal embeddings, (B, D).
        margin: Triplet margin (1, as published).
        scores: (2, B, B) uniform scores used to draw the negatives (drawn when None); given by
            tests to compare with a reference loop.
        generator: Random generator for the draw.
        groups: Prototype group of each row, (B,) int: when given, negatives come from other groups only.

    Returns:
        Scalar loss.
    """
    b = xrd.shape[0]
    dist = torch.cdist(xrd.float(), crystal.float())
    if scores is None:
        scores = torch.rand((2, b, b), device=dist.device, generator=generator)
    eye = torch.eye(b, dtype=torch.bool, device=dist.device)
    positive = dist.diagonal()
    always = torch.ones(b, dtype=torch.bool, device=dist.device)
    negative_ok = ~eye if groups is None else groups.unsqueeze(0) != groups.unsqueeze(1)
    forward = _one_direction(dist, positive, always, negative_ok, margin, scores[0])
    backward = _one_direction(dist.T, positive, always, negative_ok.T, margin, scores[1])
    return 0.5 * (forward + backward)


def prototype_loss(
    crystal: Tensor,
    groups: Tensor,
    margin: float = MARGIN,
    scores: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Structure-level triplet term: another member of the anchor's prototype group is a positive.

    For each anchor i with at least one other same-group crystal in the batch, one such j is drawn
    as the positive and one different-group crystal k with :math:`D_{ik} < D_{ij} + m` as the
    negative. This pulls substitution variants of one prototype together so that structure type is
    not drowned by chemistry, while the cross-modal loss keeps each material distinct.

    Args:
        crystal: Crystal embeddings, (B, D).
        groups: Prototype group index of each row, (B,) int.
        margin: Triplet margin.
        scores: (2, B, B) uniform scores: [0] draws the positive, [1] the negative.
        generator: Random generator for the draws.

    Returns:
        Scalar loss (0 when no anchor has a same-group partner).
    """
    b = crystal.shape[0]
    dist = torch.cdist(crystal.float(), crystal.float())
    if scores is None:
        scores = torch.rand((2, b, b), device=dist.device, generator=generator)
    eye = torch.eye(b, dtype=torch.bool, device=dist.device)
    same = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~eye
    valid = same.any(dim=1)
    pos_pick = torch.where(same, scores[0], torch.full_like(scores[0], -1.0)).argmax(dim=1)
    positive = dist.gather(1, pos_pick.unsqueeze(1)).squeeze(1)
    different = groups.unsqueeze(0) != groups.unsqueeze(1)
    return _one_direction(dist, positive, valid, different, margin, scores[1])
