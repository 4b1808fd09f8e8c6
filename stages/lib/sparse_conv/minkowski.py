"""MinkowskiEngine behind the sparse-conv interface, used when ``import MinkowskiEngine`` works (the project never
builds it: see the notes on sparse convolution for the CPU build and the CUDA-12/13 patch sets).

A MinkowskiEngine kernel is [k^3, Cin, Cout] with the offsets ordered x fastest ([Cin, Cout] for k = 1); the
canonical layout orders them z fastest, so ``get_kernel`` / ``set_kernel`` permute the offset axis. Stride-1
convolutions on existing sites are submanifold; the transposed convolution reuses the sites its down convolution
started from (one coordinate manager per input).
"""

from __future__ import annotations

import itertools

import MinkowskiEngine as ME
import torch
from torch import nn

from stages.lib.sparse_conv.base import SparseBackend


def to_canonical(k: int) -> torch.Tensor:
    """MinkowskiEngine's offset row of every canonical offset index (x fastest there, z fastest here)."""
    return torch.tensor([(iz * k + iy) * k + ix for ix, iy, iz in itertools.product(range(k), repeat=3)])


class MinkowskiBackend(SparseBackend):
    """MinkowskiConvolution / MinkowskiConvolutionTranspose on one coordinate manager."""

    name = "minkowski"

    def tensor(self, coords: torch.Tensor, feats: torch.Tensor) -> ME.SparseTensor:
        return ME.SparseTensor(feats, coordinates=coords.int(), device=feats.device)

    def features(self, t: ME.SparseTensor) -> torch.Tensor:
        return t.F

    def with_features(self, t: ME.SparseTensor, feats: torch.Tensor) -> ME.SparseTensor:
        return ME.SparseTensor(feats, coordinate_map_key=t.coordinate_map_key,
                               coordinate_manager=t.coordinate_manager)

    def conv(self, cin: int, cout: int, kernel_size: int, key: str, bias: bool = False) -> nn.Module:
        return ME.MinkowskiConvolution(cin, cout, kernel_size=kernel_size, stride=1, bias=bias, dimension=3)

    def down(self, cin: int, cout: int, key: str) -> nn.Module:
        return ME.MinkowskiConvolution(cin, cout, kernel_size=2, stride=2, dimension=3)

    def up(self, cin: int, cout: int, key: str) -> nn.Module:
        return ME.MinkowskiConvolutionTranspose(cin, cout, kernel_size=2, stride=2, dimension=3)

    def input_order(self, out: ME.SparseTensor, inp: ME.SparseTensor) -> torch.Tensor:
        return out.F[inp.inverse_mapping]  # MinkowskiEngine keeps its own (unique) order of the input coordinates

    def cat(self, a: ME.SparseTensor, b: ME.SparseTensor) -> ME.SparseTensor:
        return ME.cat(a, b)

    def get_kernel(self, module: nn.Module) -> torch.Tensor:
        w = module.kernel.detach()
        if w.dim() == 2:
            return w.unsqueeze(0).clone()
        k = round(w.shape[0] ** (1 / 3))
        return w[to_canonical(k).to(w.device)].clone()

    def set_kernel(self, module: nn.Module, weight: torch.Tensor) -> None:
        w = module.kernel
        with torch.no_grad():
            if w.dim() == 2:
                w.copy_(weight[0])
            else:
                k = round(w.shape[0] ** (1 / 3))
                out = torch.empty_like(w)
                out[to_canonical(k).to(w.device)] = weight.to(w)
                w.copy_(out)
