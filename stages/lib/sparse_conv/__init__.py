"""Sparse 3D convolution behind one thin interface, so a network is written once and runs on any backend.

Backends (``BACKENDS``, fastest first): ``minkowski`` (MinkowskiEngine, used when importable; never built by the
project), ``spconv`` (spconv 2.3.8: CPU wheel ``spconv``, GPU wheel ``spconv-cu126``) and ``torch`` (pure-torch
gather-GEMM-scatter, any device; the reference the others are tested against). ``get_backend("auto")`` picks the
first that imports on this machine and logs the choice; stages record ``backend.name`` in their store.

Every backend offers the same few operations on its own sparse tensor type:
  ``tensor(coords, feats)``       coords [N, 4] int (batch, x, y, z) >= 0 at the finest voxel size
  ``features(t)`` / ``with_features(t, f)``   read / replace the features, keeping the sites
  ``input_order(out, inp)``       features of a tensor on the input's sites, in the order the coords were given
  ``conv(cin, cout, k, key)``     stride-1 conv whose output sites are its input sites (submanifold; k odd or 1)
  ``down(cin, cout, key)``        kernel 2, stride 2 conv: output site floor(x / 2), input x = 2 o + i, i in {0,1}^3
  ``up(cin, cout, key)``          transpose of the ``down`` with the same key, back onto that down's input sites
  ``cat(a, b)``                   channel concatenation of two tensors on the same sites
  ``get_kernel(m)`` / ``set_kernel(m, w)``   weights in the canonical layout [k^3, Cin, Cout]
Canonical kernel layout: offset index ``(ix * k + iy) * k + iz`` (z fastest) with offset ``i - k // 2`` for odd k
and ``i`` for the stride-2 kernels; ``out[o] += feats[o + offset] @ w[index]`` (cross-correlation, as F.conv3d).
"""

from __future__ import annotations

import logging
from typing import Callable

from stages.lib.sparse_conv.base import SparseBackend

log = logging.getLogger(__name__)


def _minkowski() -> SparseBackend:
    from stages.lib.sparse_conv.minkowski import MinkowskiBackend

    return MinkowskiBackend()


def _spconv() -> SparseBackend:
    from stages.lib.sparse_conv.spconv_backend import SpconvBackend

    return SpconvBackend()


def _torch() -> SparseBackend:
    from stages.lib.sparse_conv.reference import TorchBackend

    return TorchBackend()


BACKENDS: dict[str, Callable[[], SparseBackend]] = {"minkowski": _minkowski, "spconv": _spconv, "torch": _torch}


def available_backends() -> list[str]:
    """Names of the backends that import on this machine, fastest first."""
    names = []
    for name, make in BACKENDS.items():
        try:
            make()
        except ImportError:
            continue
        names.append(name)
    return names


def get_backend(name: str = "auto") -> SparseBackend:
    """The named backend, or with ``auto`` the fastest one that imports here (the choice is logged)."""
    if name == "auto":
        for candidate, make in BACKENDS.items():
            try:
                backend = make()
            except ImportError as exc:
                log.info("sparse-conv backend %s not available (%s)", candidate, exc)
                continue
            log.info("sparse-conv backend: %s (auto: the fastest that imports here)", backend.name)
            return backend
        raise ImportError("no sparse-conv backend imports")  # unreachable: the torch backend always imports
    if name not in BACKENDS:
        raise ValueError(f"unknown sparse-conv backend {name!r}; known: auto, {', '.join(BACKENDS)}")
    try:
        backend = BACKENDS[name]()
    except ImportError as exc:
        raise ValueError(f"sparse-conv backend {name!r} is not available here ({exc}); "
                         f"available: {available_backends()}") from exc
    log.info("sparse-conv backend: %s", backend.name)
    return backend


__all__ = ["BACKENDS", "SparseBackend", "available_backends", "get_backend"]
