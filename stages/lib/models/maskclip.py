"""MaskCLIP dense features of an open_clip ViT (Zhou et al., "Extract Free Dense Labels from CLIP", ECCV 2022).

The last transformer block is run on its value path only: the query / key attention is skipped and every token
becomes out_proj(v_proj(ln_1(x))) (the block's residual and its MLP are left out, as MaskCLIP does); the patch tokens
then go through ``ln_post`` and the visual projection, each treated like the class token. Inputs of any size that is a
multiple of the patch size are accepted: the positional embedding's patch grid is resized bicubically to the input's
grid (the class token's embedding is kept).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn


def grid_positional_embedding(visual: VisionTransformer, grid: tuple[int, int]) -> Tensor:
    """[1 + gh * gw, width] positional embedding for a ``grid`` of patches (the trained one when it matches)."""
    pos = visual.positional_embedding
    if tuple(grid) == tuple(visual.grid_size):
        return pos
    gh, gw = visual.grid_size
    patches = pos[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([pos[:1], patches[0].permute(1, 2, 0).reshape(grid[0] * grid[1], -1).to(pos.dtype)])


def value_path(block: nn.Module, x: Tensor) -> Tensor:
    """MaskCLIP's last block: out_proj(v_proj(ln_1(x))) per token, the layer scale of the attention branch applied."""
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
        raise NotImplementedError(f"MaskCLIP needs a block with torch MultiheadAttention, got {type(attn).__name__}")
    width = attn.embed_dim
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width:], attn.in_proj_bias[2 * width:])
    return block.ls_1(F.linear(v, attn.out_proj.weight, attn.out_proj.bias))


def maskclip_dense(visual: VisionTransformer, x: Tensor) -> Tensor:
    """Normalised images [B, 3, h, w] (h, w multiples of the patch size) -> patch features [B, h/p, w/p, D]."""
    if visual.attn_pool is not None or visual.proj is None:
        raise NotImplementedError("MaskCLIP dense features need a ViT with token pooling and a projection")
    ph, pw = visual.patch_size
    if x.shape[-2] % ph or x.shape[-1] % pw:
        raise ValueError(f"input {tuple(x.shape[-2:])} is not a multiple of the patch size {(ph, pw)}")
    grid = (x.shape[-2] // ph, x.shape[-1] // pw)
    tokens = visual.conv1(x).flatten(2).transpose(1, 2)  # [B, gh * gw, width]
    cls = visual.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
    tokens = torch.cat([cls, tokens], 1) + grid_positional_embedding(visual, grid).to(tokens.dtype)
    tokens = visual.ln_pre(tokens)
    transformer = visual.transformer
    if not transformer.batch_first:
        tokens = tokens.transpose(0, 1)
    for block in transformer.resblocks[:-1]:
        tokens = block(tokens)
    tokens = value_path(transformer.resblocks[-1], tokens)
    if not transformer.batch_first:
        tokens = tokens.transpose(0, 1)
    patches = visual.ln_post(tokens[:, 1:]) @ visual.proj
    return patches.reshape(x.shape[0], grid[0], grid[1], -1)
