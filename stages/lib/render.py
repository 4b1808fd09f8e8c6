"""One rendering function for RGB, depth and N-channel features; the backend is chosen inside.

On CUDA tensors it calls ``gsplat.rasterization`` (tile-based CUDA kernels). On CPU it uses gsplat's
pure-PyTorch reference projection and SH evaluation plus a dense front-to-back alpha compositor
(the 3DGS volume rendering sum C = sum_i c_i a_i prod_{j<i} (1 - a_j)), so the whole pipeline runs
in tests without a GPU. Both return ``(colors [C,H,W,D], alphas [C,H,W,1], info)`` where ``info``
carries what gsplat's densification strategies read (means2d, radii, width, height, n_cameras) and ``packed``.

Options of gsplat's rasteriser: ``rasterize_mode="antialiased"`` (Mip-Splatting's 2D filter: each opacity is scaled
by sqrt(det(Sigma2D) / det(Sigma2D + 0.3 I))) is computed by both backends; ``packed`` is a memory layout of the CUDA
kernels only (the CPU path always works on the visible Gaussians, so it returns the same image and non-packed
``info``); ``absgrad`` (per-pixel absolute gradients of the 2D means, written by the CUDA backward) has no CPU
counterpart and stops with ``CudaOnlyError``.
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

RenderMode = Literal["RGB", "RGB+D", "RGB+ED", "D", "ED"]
RasterizeMode = Literal["classic", "antialiased"]
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
LOG_TRANSMITTANCE_MIN = math.log(TRANSMITTANCE_MIN)
TILE = 4


class CudaOnlyError(ValueError):
    """An option that only gsplat's CUDA kernels implement was asked of the CPU path."""


def render(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int | None = None,
    backgrounds: Tensor | None = None,
    render_mode: RenderMode = "RGB",
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    absgrad: bool = False,
    rasterize_mode: RasterizeMode = "classic",
    packed: bool = False,
    tile_size: int = 16,
    backend: Literal["auto", "gsplat", "torch"] = "auto",
) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """Render C cameras. ``colors`` are SH coefficients [N,K,3] if ``sh_degree`` is set, else features [N,D] (or
    [C,N,D], one set per camera). ``tile_size``: the side in pixels of gsplat's CUDA tiles (the same image; a speed
    knob of the CUDA kernels, which the CPU path ignores)."""
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")
    if backend == "auto":
        backend = "gsplat" if means.is_cuda else "torch"
    if backend == "gsplat":
        from gsplat import rasterization

        # gsplat 1.5.3 checks packed-mode backgrounds against the packed (1-D) layout and rejects every shape, so in
        # packed mode the background is composited here, as the kernel would: colour + (1 - alpha) x background
        colors_out, alphas, info = rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, backgrounds=None if packed else backgrounds, render_mode=render_mode,
            near_plane=near_plane, far_plane=far_plane, absgrad=absgrad, packed=packed,
            rasterize_mode=rasterize_mode, tile_size=tile_size,
        )
        if packed and backgrounds is not None:
            colors_out = composite_background(colors_out, alphas, backgrounds)
        info["packed"] = packed
        return colors_out, alphas, info
    if absgrad:
        raise CudaOnlyError("absgrad densification needs gsplat's CUDA rasteriser (the CUDA backward writes the "
                            "per-pixel absolute gradients); the CPU path has none: set densify.absgrad: false")
    return _render_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height,
                         sh_degree, backgrounds, render_mode, near_plane, far_plane, rasterize_mode == "antialiased")


def composite_background(colors: Tensor, alphas: Tensor, backgrounds: Tensor) -> Tensor:
    """Front-to-back compositing's last term: colour + (1 - alpha) x background on the first channels of
    ``colors`` [C,H,W,D] (``backgrounds`` [C,B], B <= D; the other channels, e.g. depth, are left as they are)."""
    n_bg = backgrounds.shape[-1]
    return torch.cat([colors[..., :n_bg] + (1 - alphas) * backgrounds[:, None, None], colors[..., n_bg:]], dim=-1)


def _render_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, sh_degree,
                  backgrounds, render_mode, near_plane, far_plane, antialiased=False):
    from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci, _spherical_harmonics

    num_cams, n = viewmats.shape[0], means.shape[0]
    with torch.no_grad():  # camera-space depth of every centre; the CUDA kernels skip the others the same way
        cam_depths = torch.einsum("cj,nj->cn", viewmats[:, 2, :3], means) + viewmats[:, 2, 3:4]
    covars, _ = _quat_scale_to_covar_preci(quats, scales, True, False, triu=False)
    views = [_project_visible(means, covars, viewmats[c:c + 1], Ks[c:c + 1], width, height, near_plane, far_plane,
                              cam_depths[c]) for c in range(num_cams)]
    means2d = torch.stack([means.new_zeros(n, 2).index_copy(0, v.ids, v.means2d) for v in views])

    out_colors, out_alphas = [], []
    for c, v in enumerate(views):
        if sh_degree is not None:
            campos = torch.linalg.inv(viewmats[c])[:3, 3]
            feats = torch.clamp_min(_spherical_harmonics(sh_degree, means[v.ids] - campos, colors[v.ids]) + 0.5, 0.0)
        else:  # post-activation colours / features, shared [N,D] or per camera [C,N,D]
            feats = (colors[c] if colors.dim() == 3 else colors)[v.ids]
        if render_mode in ("D", "ED"):
            feats = v.depths[:, None]
        elif render_mode in ("RGB+D", "RGB+ED"):
            feats = torch.cat([feats, v.depths[:, None]], dim=-1)
        table = _tile_table(v.means2d.detach(), v.radii, v.depths.detach(), width, height)
        opa = opacities[v.ids] * v.compensations if antialiased else opacities[v.ids]
        col, acc = _composite_tiles(table, means2d[c][v.ids], v.conics, opa, feats, width, height)
        out_colors.append(col)
        out_alphas.append(acc)
    render_colors = torch.stack(out_colors)
    render_alphas = torch.stack(out_alphas)
    if render_mode in ("ED", "RGB+ED"):
        render_colors = torch.cat([render_colors[..., :-1],
                                   render_colors[..., -1:] / render_alphas.clamp_min(1e-10)], dim=-1)
    if backgrounds is not None:
        render_colors = composite_background(render_colors, render_alphas, backgrounds)
    radii = torch.stack([torch.zeros(n, 2, dtype=torch.int32, device=means.device).index_copy(0, v.ids,
                                                                                              v.radii.to(torch.int32))
                         for v in views])
    conics = torch.stack([means.new_zeros(n, 3).index_copy(0, v.ids, v.conics.detach()) for v in views])
    info = {"means2d": means2d, "radii": radii, "depths": cam_depths, "conics": conics,
            "width": width, "height": height, "n_cameras": num_cams, "gaussian_ids": None, "packed": False}
    return render_colors, render_alphas, info


class _VisibleProjection(NamedTuple):
    """One camera's projection of the Gaussians whose centres lie between its near and far planes."""

    ids: Tensor      # [n] indices into the full set
    means2d: Tensor  # [n, 2]
    radii: Tensor    # [n, 2], 0 where outside the image
    depths: Tensor   # [n]
    conics: Tensor   # [n, 3]
    compensations: Tensor  # [n], sqrt(det(Sigma2D) / det(Sigma2D + eps2d I)): the anti-aliased opacity factor


def _project_visible(means: Tensor, covars: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int,
                     near_plane: float, far_plane: float, cam_depths: Tensor) -> _VisibleProjection:
    """gsplat's reference projection of the centres in front of the near plane only.

    Projecting every Gaussian and masking afterwards poisons the backward pass: a centre on (or within ~1e-10 of)
    the camera plane has an infinite perspective Jacobian, and zero upstream gradient times infinity is NaN,
    which Adam writes into that Gaussian's means, scales and rotation.
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection

    ids = torch.nonzero((cam_depths > near_plane) & (cam_depths < far_plane)).squeeze(1)
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        means[ids], covars[ids], viewmat, K, width, height, eps2d=0.3, near_plane=near_plane, far_plane=far_plane,
        calc_compensations=True)
    return _VisibleProjection(ids, means2d[0], radii[0], depths[0], conics[0], compensations[0])


def _tile_table(means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int) -> Tensor:
    """Depth-sorted Gaussian ids per TILE x TILE tile, padded with -1: [tiles, max per tile] (gsplat's tile binning)."""
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    ids = torch.where((radii > 0).all(dim=-1))[0]
    m, r = means2d[ids], radii[ids].to(means2d.dtype)
    x0 = ((m[:, 0] - r[:, 0]) // TILE).clamp(0, tiles_x - 1).long()
    x1 = ((m[:, 0] + r[:, 0]) // TILE).clamp(0, tiles_x - 1).long()
    y0 = ((m[:, 1] - r[:, 1]) // TILE).clamp(0, tiles_y - 1).long()
    y1 = ((m[:, 1] + r[:, 1]) // TILE).clamp(0, tiles_y - 1).long()
    nx, count = x1 - x0 + 1, (x1 - x0 + 1) * (y1 - y0 + 1)
    owner = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), count)
    local = torch.arange(len(owner), device=ids.device) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    tile = (y0[owner] + local // nx[owner]) * tiles_x + x0[owner] + local % nx[owner]
    order = torch.argsort(depths[ids][owner], stable=True)
    order = order[torch.argsort(tile[order], stable=True)]
    tile, gauss = tile[order], ids[owner[order]]
    per_tile = torch.bincount(tile, minlength=tiles_x * tiles_y)
    slot = torch.arange(len(tile), device=ids.device) - (torch.cumsum(per_tile, 0) - per_tile)[tile]
    table = torch.full((tiles_x * tiles_y, int(per_tile.max().item()) if len(tile) else 0), -1,
                       dtype=torch.long, device=ids.device)
    table[tile, slot] = gauss
    return table


def _composite_tiles(table: Tensor, means2d: Tensor, conics: Tensor, opacities: Tensor, feats: Tensor,
                     width: int, height: int) -> tuple[Tensor, Tensor]:
    """Front-to-back alpha blending per tile (3DGS Eq. 3), transmittance accumulated in log space."""
    tiles_x, tiles_y = -(-width // TILE), -(-height // TILE)
    offs = torch.arange(TILE, device=means2d.device, dtype=means2d.dtype) + 0.5
    py, px = torch.meshgrid(offs, offs, indexing="ij")
    ty, tx = torch.meshgrid(torch.arange(tiles_y, device=means2d.device), torch.arange(tiles_x, device=means2d.device),
                            indexing="ij")
    pix = torch.stack([tx.reshape(-1, 1) * TILE + px.reshape(1, -1), ty.reshape(-1, 1) * TILE + py.reshape(1, -1)], -1)
    valid = table >= 0
    idx = table.clamp_min(0)
    d = pix[:, :, None, :] - means2d[idx][:, None]
    con = conics[idx][:, None]
    sigma = 0.5 * (con[..., 0] * d[..., 0] ** 2 + con[..., 2] * d[..., 1] ** 2) + con[..., 1] * d[..., 0] * d[..., 1]
    alpha = torch.clamp_max(opacities[idx][:, None] * torch.exp(-sigma), ALPHA_MAX)
    alpha = torch.where(valid[:, None] & (sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
    log_t = torch.log1p(-alpha)
    log_after = torch.cumsum(log_t, dim=-1)
    # gsplat stops compositing a pixel once its transmittance would fall below TRANSMITTANCE_MIN.
    weights = torch.where(log_after >= LOG_TRANSMITTANCE_MIN, alpha * torch.exp(log_after - log_t),
                          torch.zeros_like(alpha))
    color = torch.einsum("tpk,tkd->tpd", weights, feats[idx])
    acc = weights.sum(-1, keepdim=True)

    def to_image(x: Tensor) -> Tensor:
        x = x.reshape(tiles_y, tiles_x, TILE, TILE, -1).permute(0, 2, 1, 3, 4)
        return x.reshape(tiles_y * TILE, tiles_x * TILE, -1)[:height, :width]

    return to_image(color), to_image(acc)
