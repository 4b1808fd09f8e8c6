"""The sparse-convolution backend interface (see ``stages.lib.sparse_conv``) and the canonical kernel offsets."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn


def kernel_offsets(k: int, strided: bool = False) -> torch.Tensor:
    """[k^3, 3] offsets in the canonical order (z fastest): ``i - k // 2`` for odd k, ``i`` for stride-2 kernels."""
    shift = 0 if strided else k // 2
    return torch.tensor(list(itertools.product(range(k), repeat=3)), dtype=torch.int64) - shift


class SparseBackend(ABC):
    """One sparse-convolution library behind the operations a sparse U-Net needs."""

    name: str

    @abstractmethod
    def tensor(self, coords: torch.Tensor, feats: torch.Tensor) -> Any:
        """A sparse tensor at the finest level from coords [N, 4] (batch, x, y, z) >= 0 and feats [N, C]."""

    @abstractmethod
    def features(self, t: Any) -> torch.Tensor:
        """The feature rows [N, C], in the order of the tensor's sites."""

    @abstractmethod
    def with_features(self, t: Any, feats: torch.Tensor) -> Any:
        """The same sites with new features."""

    @abstractmethod
    def conv(self, cin: int, cout: int, kernel_size: int, key: str, bias: bool = False) -> nn.Module:
        """Stride-1 convolution whose output sites are its input sites (``key``: sites sharing a kernel map)."""

    @abstractmethod
    def down(self, cin: int, cout: int, key: str) -> nn.Module:
        """Kernel-2, stride-2 convolution (``key`` names it for the matching ``up``)."""

    @abstractmethod
    def up(self, cin: int, cout: int, key: str) -> nn.Module:
        """Transposed kernel-2, stride-2 convolution back onto the input sites of ``down(..., key)``."""

    def input_order(self, out: Any, inp: Any) -> torch.Tensor:
        """Features of ``out``, a tensor on the sites of the input ``inp``, in the row order of the coords given to
        ``tensor`` (a library may keep the sites in another order)."""
        return self.features(out)

    def cat(self, a: Any, b: Any) -> Any:
        """Channel concatenation of two tensors on the same sites, in the same order."""
        return self.with_features(a, torch.cat([self.features(a), self.features(b)], dim=1))

    @abstractmethod
    def get_kernel(self, module: nn.Module) -> torch.Tensor:
        """A convolution's weights in the canonical layout [k^3, Cin, Cout] (a copy)."""

    @abstractmethod
    def set_kernel(self, module: nn.Module, weight: torch.Tensor) -> None:
        """Load canonical weights [k^3, Cin, Cout] into a convolution of this backend."""
