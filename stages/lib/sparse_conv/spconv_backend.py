"""spconv 2.3.8 behind the sparse-conv interface (CPU wheel ``spconv``; on the GPU ``spconv-cu126``).

Two spconv behaviours are handled here (see the notes on sparse convolution):
- on a torch without CUDA, the backward pass of a non-submanifold convolution asks for the current CUDA stream before
  taking its CPU branch and fails with "Torch not compiled with CUDA enabled"; the stream is not used on the CPU
  path, so ``spconv.pytorch.ops.get_current_stream`` is replaced by a constant 0 when no CUDA device exists;
- a kernel-size-1 convolution multiplies by its weight's memory read as [Cin, Cout] although the parameter's shape
  is [Cout, 1, 1, 1, Cin]; ``get_kernel`` / ``set_kernel`` read and write that layout for k = 1 and
  [Cout, kx, ky, kz, Cin] otherwise;
- with more than one torch CPU thread, spconv 2.3.8's CPU convolutions (forward and backward) give wrong,
  run-to-run different sums (a race found by the backend-equality tests; exact with one thread), so a CPU tensor
  sets torch's thread count to 1, with a warning.
Sites are given as (batch, x, y, z); the spatial shape is the extent rounded up to a multiple of 2^5 so that every
stride-2 level keeps all sites.
"""

from __future__ import annotations

import logging

import spconv.pytorch as spconv
import spconv.pytorch.ops as spconv_ops
import torch
from torch import nn

from stages.lib.sparse_conv.base import SparseBackend

log = logging.getLogger(__name__)
LEVELS = 5

if not torch.cuda.is_available():
    spconv_ops.get_current_stream = lambda: 0  # the value is unused on the CPU path


class SpconvBackend(SparseBackend):
    """spconv's SubMConv3d / SparseConv3d / SparseInverseConv3d."""

    name = "spconv"

    def tensor(self, coords: torch.Tensor, feats: torch.Tensor) -> spconv.SparseConvTensor:
        if not feats.is_cuda and torch.get_num_threads() > 1:
            log.warning("spconv's CPU kernels give wrong sums with %d torch threads; using 1", torch.get_num_threads())
            torch.set_num_threads(1)
        extent = coords[:, 1:].max(0).values + 1 if len(coords) else torch.ones(3, dtype=torch.long)
        shape = ((extent + 2**LEVELS - 1) // 2**LEVELS * 2**LEVELS).tolist()
        batch = int(coords[:, 0].max()) + 1 if len(coords) else 1
        return spconv.SparseConvTensor(feats, coords.int().contiguous(), shape, batch)

    def features(self, t: spconv.SparseConvTensor) -> torch.Tensor:
        return t.features

    def with_features(self, t: spconv.SparseConvTensor, feats: torch.Tensor) -> spconv.SparseConvTensor:
        return t.replace_feature(feats)

    def conv(self, cin: int, cout: int, kernel_size: int, key: str, bias: bool = False) -> nn.Module:
        return spconv.SubMConv3d(cin, cout, kernel_size, padding=kernel_size // 2, bias=bias, indice_key=key)

    def down(self, cin: int, cout: int, key: str) -> nn.Module:
        return spconv.SparseConv3d(cin, cout, 2, stride=2, bias=False, indice_key=key)

    def up(self, cin: int, cout: int, key: str) -> nn.Module:
        return spconv.SparseInverseConv3d(cin, cout, 2, bias=False, indice_key=key)

    def get_kernel(self, module: nn.Module) -> torch.Tensor:
        w = module.weight.detach()
        cout, cin = w.shape[0], w.shape[-1]
        if w.shape[1:4] == (1, 1, 1):
            return w.reshape(cin, cout).unsqueeze(0).clone()
        return w.permute(1, 2, 3, 4, 0).reshape(-1, cin, cout).clone()

    def set_kernel(self, module: nn.Module, weight: torch.Tensor) -> None:
        w = module.weight
        cout, cin, k = w.shape[0], w.shape[-1], w.shape[1]
        if weight.shape != (k**3, cin, cout):
            raise ValueError(f"kernel {tuple(weight.shape)} does not fit spconv weight {tuple(w.shape)}")
        with torch.no_grad():
            if k == 1:
                w.copy_(weight[0].contiguous().reshape(w.shape))
            else:
                w.copy_(weight.reshape(k, k, k, cin, cout).permute(4, 0, 1, 2, 3))
