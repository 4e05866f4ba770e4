"""1D CNN encoder for powder XRD patterns (Suzuki et al. 2022, figure 1; sizes from the published code).

Input: 5000-point patterns (2θ 10–110°, 0.02° bins), each divided by its own maximum.

=====================================================  ===========
layer                                                  length out
=====================================================  ===========
Conv1d(1→80, k=50, s=5, p=10), BN, ReLU                995
Conv1d(80→80, k=10, s=5, p=5), BN, ReLU                200
AvgPool1d(k=4, s=2)                                    99
Conv1d(80→80, k=3, s=3), BN, ReLU                      33
AvgPool1d(k=3)                                         11
flatten                                                880
Linear 880→1024, BN, ReLU; 1024→1024, BN, ReLU; 1024→1024
=====================================================  ===========
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from matconcept.encoders.cgcnn import mlp_head

PATTERN_POINTS = 5000
CHANNELS = 80


def _conv_block(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
    return [nn.Conv1d(c_in, c_out, kernel, stride, padding), nn.BatchNorm1d(c_out), nn.ReLU()]


class XRDEncoder(nn.Module):
    """XRD pattern → embedding.

    Args:
        points: Pattern length (5000).
        channels: Convolution channels (80).
        head: Sizes of the fully connected layers after flattening (1024, 1024, 1024).

    Shapes:
        (B, points) or (B, 1, points) → (B, head[-1]).
    """

    def __init__(
        self, points: int = PATTERN_POINTS, channels: int = CHANNELS, head: tuple[int, ...] = (1024, 1024, 1024)
    ) -> None:
        super().__init__()
        self.points = points
        self.features = nn.Sequential(
            *_conv_block(1, channels, 50, 5, 10),
            *_conv_block(channels, channels, 10, 5, 5),
            nn.AvgPool1d(4, 2),
            *_conv_block(channels, channels, 3, 3, 0),
            nn.AvgPool1d(3),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(2, 1, points)).shape[-1]
        self.head = mlp_head([flat, *head])

    def forward(self, pattern: Tensor) -> Tensor:
        if pattern.dim() == 2:
            pattern = pattern.unsqueeze(1)
        return self.head(self.features(pattern))
