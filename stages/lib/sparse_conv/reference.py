"""Pure-torch sparse convolution by gather-GEMM-scatter: the test oracle of the other backends, and the backend of
last resort (any torch, any device, nothing compiled).

Sites are found by packing (batch, x, y, z) into one int64 key and ``searchsorted`` over the sorted keys. Kernel maps
are cached per stride in a dict shared by every tensor derived from one input (like MinkowskiEngine's coordinate
manager), so the convolutions of one level build their map once per forward pass. One Python loop over the kernel
offsets makes it slower than the compiled backends on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from stages.lib.sparse_conv.base import SparseBackend, kernel_offsets

BITS = 18  # per spatial axis: coordinates in [0, 2^17) after an offset of at most +-2^17 - 1
SHIFT = 1 << (BITS - 1)


def pack(coords: torch.Tensor) -> torch.Tensor:
    """(batch, x, y, z) [N, 4] int64 -> one sortable int64 key per site (coordinates may be offset by < 2^17)."""
    c = coords[:, 1:] + SHIFT
    return (((coords[:, 0] << BITS | c[:, 0]) << BITS | c[:, 1]) << BITS) | c[:, 2]


@dataclass
class TorchSparse:
    """Sites ``coords`` [N, 4] (batch, x, y, z in units of ``stride`` voxels), ``feats`` [N, C] and the shared map
    cache."""

    coords: torch.Tensor
    feats: torch.Tensor
    stride: int = 1
    maps: dict = field(default_factory=dict)

    def sorted_keys(self) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("sorted", self.stride)
        if key not in self.maps:
            self.maps[key] = torch.sort(pack(self.coords))
        return self.maps[key]


def subm_pairs(t: TorchSparse, k: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per canonical offset of a k^3 kernel: (input rows, output rows) of the site pairs it connects."""
    key = ("subm", t.stride, k)
    if key not in t.maps:
        keys, order = t.sorted_keys()
        pairs = []
        for offset in kernel_offsets(k).to(t.coords.device):
            query = pack(t.coords + torch.cat([offset.new_zeros(1), offset]))
            pos = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
            hit = keys[pos] == query
            pairs.append((order[pos[hit]], torch.nonzero(hit).squeeze(1)))
        t.maps[key] = pairs
    return t.maps[key]


def down_map(t: TorchSparse) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(coarse sites [M, 4], coarse row of every input site [N], canonical kernel index of every input site [N])."""
    key = ("down", t.stride)
    if key not in t.maps:
        half = torch.div(t.coords[:, 1:], 2, rounding_mode="floor")
        inner = t.coords[:, 1:] - 2 * half
        coarse, inverse = torch.unique(torch.cat([t.coords[:, :1], half], 1), dim=0, return_inverse=True)
        t.maps[key] = (coarse, inverse, (inner[:, 0] * 2 + inner[:, 1]) * 2 + inner[:, 2])
        t.maps[("coords", t.stride)] = t.coords
    return t.maps[key]


def _kernel(cin: int, cout: int, volume: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(volume, cin, cout) * math.sqrt(2.0 / (volume * cin)))


class SubmConv(nn.Module):
    """Stride-1 convolution on the input sites: out[o] = sum_k feats[o + d_k] @ weight[k] (+ bias)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, bias: bool = False):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"a stride-1 sparse conv needs an odd kernel size, got {kernel_size}")
        self.kernel_size = kernel_size
        self.weight = _kernel(cin, cout, kernel_size**3)
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, t: TorchSparse) -> TorchSparse:
        if self.kernel_size == 1:
            out = t.feats @ self.weight[0]
        else:
            out = t.feats.new_zeros(len(t.feats), self.weight.shape[2])
            for w, (rows_in, rows_out) in zip(self.weight, subm_pairs(t, self.kernel_size)):
                if len(rows_in):
                    out.index_add_(0, rows_out, t.feats[rows_in] @ w)
        if self.bias is not None:
            out = out + self.bias
        return TorchSparse(t.coords, out, t.stride, t.maps)


class DownConv(nn.Module):
    """Kernel 2, stride 2: out[o] = sum over inputs x = 2 o + i of feats[x] @ weight[index(i)]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = _kernel(cin, cout, 8)

    def forward(self, t: TorchSparse) -> TorchSparse:
        coarse, inverse, index = down_map(t)
        out = t.feats.new_zeros(len(coarse), self.weight.shape[2])
        for k, w in enumerate(self.weight):
            rows = torch.nonzero(index == k).squeeze(1)
            if len(rows):
                out.index_add_(0, inverse[rows], t.feats[rows] @ w)
        return TorchSparse(coarse, out, t.stride * 2, t.maps)


class UpConv(nn.Module):
    """Transpose of ``DownConv``: every fine site x = 2 o + i gets feats[o] @ weight[index(i)]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.weight = _kernel(cin, cout, 8)

    def forward(self, t: TorchSparse) -> TorchSparse:
        fine_stride = t.stride // 2
        if ("down", fine_stride) not in t.maps:
            raise ValueError(f"no stride-{fine_stride} sites to go up to (no down convolution from there)")
        _, inverse, index = t.maps[("down", fine_stride)]
        out = t.feats.new_zeros(len(inverse), self.weight.shape[2])
        for k, w in enumerate(self.weight):
            rows = torch.nonzero(index == k).squeeze(1)
            if len(rows):
                out.index_copy_(0, rows, t.feats[inverse[rows]] @ w)
        return TorchSparse(t.maps[("coords", fine_stride)], out, fine_stride, t.maps)


class TorchBackend(SparseBackend):
    """Pure-torch gather-GEMM-scatter (the reference)."""

    name = "torch"

    def tensor(self, coords: torch.Tensor, feats: torch.Tensor) -> TorchSparse:
        return TorchSparse(coords.long(), feats)

    def features(self, t: TorchSparse) -> torch.Tensor:
        return t.feats

    def with_features(self, t: TorchSparse, feats: torch.Tensor) -> TorchSparse:
        return TorchSparse(t.coords, feats, t.stride, t.maps)

    def conv(self, cin: int, cout: int, kernel_size: int, key: str, bias: bool = False) -> nn.Module:
        return SubmConv(cin, cout, kernel_size, bias)

    def down(self, cin: int, cout: int, key: str) -> nn.Module:
        return DownConv(cin, cout)

    def up(self, cin: int, cout: int, key: str) -> nn.Module:
        return UpConv(cin, cout)

    def get_kernel(self, module: nn.Module) -> torch.Tensor:
        return module.weight.detach().clone()

    def set_kernel(self, module: nn.Module, weight: torch.Tensor) -> None:
        if weight.shape != module.weight.shape:
            raise ValueError(f"kernel {tuple(weight.shape)} does not fit {tuple(module.weight.shape)}")
        with torch.no_grad():
            module.weight.copy_(weight)
