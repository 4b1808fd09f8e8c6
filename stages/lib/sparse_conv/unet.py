"""MinkUNet18A (Choy et al. 2019; the 3D backbone of OpenScene and SAS), written once against the sparse-conv
interface.

A kernel-5 stem, four stride-2 encoder levels of two residual basic blocks each, four transposed stride-2 decoder
levels that concatenate the encoder's skip features, and a 1x1 head. Widths: PLANES = (32, 64, 128, 256, 128, 128,
96, 96), INIT_DIM = 32, two blocks per level, as MinkowskiEngine's MinkUNet18A; ``width`` scales every width (1.0 =
MinkUNet18A; the CPU demo uses less). Batch norm and ReLU act on the feature rows, so they are backend-independent.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.lib.sparse_conv.base import SparseBackend

PLANES = (32, 64, 128, 256, 128, 128, 96, 96)
INIT_DIM = 32
BLOCKS = 2
LEVELS = 4


class FeatureNorm(nn.Module):
    """BatchNorm1d (and an optional ReLU) on a sparse tensor's feature rows."""

    def __init__(self, backend: SparseBackend, channels: int, relu: bool = True):
        super().__init__()
        self.backend, self.norm, self.relu = backend, nn.BatchNorm1d(channels), relu

    def forward(self, t: Any) -> Any:
        f = self.norm(self.backend.features(t))
        return self.backend.with_features(t, torch.relu(f) if self.relu else f)


class BasicBlock(nn.Module):
    """Two 3x3x3 convolutions with batch norm and a residual (a 1x1 convolution where the width changes)."""

    def __init__(self, backend: SparseBackend, cin: int, cout: int, key: str):
        super().__init__()
        self.backend = backend
        self.conv1, self.norm1 = backend.conv(cin, cout, 3, key), FeatureNorm(backend, cout)
        self.conv2, self.norm2 = backend.conv(cout, cout, 3, key), FeatureNorm(backend, cout, relu=False)
        self.skip = None
        if cin != cout:
            self.skip = nn.ModuleList([backend.conv(cin, cout, 1, key + "_1x1"), FeatureNorm(backend, cout, False)])

    def forward(self, t: Any) -> Any:
        out = self.norm2(self.conv2(self.norm1(self.conv1(t))))
        residual = t if self.skip is None else self.skip[1](self.skip[0](t))
        f = self.backend.features(out) + self.backend.features(residual)
        return self.backend.with_features(out, torch.relu(f))


def scaled(width: float) -> tuple[tuple[int, ...], int]:
    """PLANES and INIT_DIM scaled by ``width`` (at least 4 channels each)."""
    if width <= 0:
        raise ValueError(f"the network width factor must be > 0, got {width}")
    return tuple(max(4, round(p * width)) for p in PLANES), max(4, round(INIT_DIM * width))


class MinkUNet18A(nn.Module):
    """Sparse U-Net: ``forward(tensor)`` -> the backend's sparse tensor with ``out_channels`` features per site."""

    def __init__(self, backend: SparseBackend, in_channels: int, out_channels: int, width: float = 1.0):
        super().__init__()
        self.backend = backend
        planes, init = scaled(width)
        self.stem = nn.Sequential(backend.conv(in_channels, init, 5, "stem"), FeatureNorm(backend, init))
        self.down = nn.ModuleList()
        self.encoder = nn.ModuleList()
        skips, cin = [init], init
        for level in range(LEVELS):
            self.down.append(nn.Sequential(backend.down(cin, cin, f"down{level}"), FeatureNorm(backend, cin)))
            self.encoder.append(self.blocks(cin, planes[level], f"enc{level}"))
            cin = planes[level]
            skips.append(cin)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for level in range(LEVELS):
            out = planes[LEVELS + level]
            self.up.append(nn.Sequential(backend.up(cin, out, f"down{LEVELS - 1 - level}"), FeatureNorm(backend, out)))
            self.decoder.append(self.blocks(out + skips[LEVELS - 1 - level], out, f"dec{level}"))
            cin = out
        self.head = backend.conv(cin, out_channels, 1, "head", bias=True)

    def blocks(self, cin: int, cout: int, key: str) -> nn.Sequential:
        return nn.Sequential(*[BasicBlock(self.backend, cin if b == 0 else cout, cout, key) for b in range(BLOCKS)])

    def forward(self, t: Any) -> Any:
        out = self.stem(t)
        skips = [out]
        for down, encoder in zip(self.down, self.encoder):
            out = encoder(down(out))
            skips.append(out)
        skips.pop()
        for up, decoder in zip(self.up, self.decoder):
            out = decoder(self.backend.cat(up(out), skips.pop()))
        return self.head(out)

    def convolutions(self) -> list[nn.Module]:
        """Every convolution module in construction order (the leaf modules other than batch norms), for moving
        weights between backends with ``get_kernel`` / ``set_kernel``."""
        return [m for m in self.modules() if not list(m.children()) and not isinstance(m, nn.BatchNorm1d)]
