"""Stable Diffusion 1.5 (diffusers) with cross-attention capture, for SAS's annotation-free capability (Sec. 3.2).

``load_diffusion`` builds the UNet, VAE, CLIP text encoder, tokenizer and scheduler from a diffusers directory (the
registry's ``stable_diffusion``) or, for tests and benches only, tiny random-weight modules. ``synthesise`` runs
classifier-free guided DDIM sampling and returns the image; a recording attention processor on every cross-attention
layer (``attn2``) hands the caller's sink, per layer, step and class token, the conditional branch's head-averaged
cross-attention map (Eq. 1) at the latent size (``latent_size``), e.g. SAS's Eq. 2 aggregator.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from stages.lib.models import seeded_random_weights

log = logging.getLogger(__name__)
MAX_TOKENS = 77

# (text, add special tokens and pad to MAX_TOKENS) -> token ids
Tokenize = Callable[[str, bool], list[int]]
# receives one cross-attention map [h, w] of one watched token (one UNet layer, one step)
AttentionSink = Callable[[Tensor], None]


@dataclass
class DiffusionModel:
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenize: Tokenize
    scheduler: object
    device: torch.device


class CrossAttentionRecorder:
    """Attention processor of one cross-attention layer: the standard attention (Eq. 1) whose probabilities of the
    watched tokens, conditional half of the batch, mean over heads, go to the aggregator."""

    def __init__(self, watch: "TokenWatch") -> None:
        self.watch = watch

    def __call__(self, attn, hidden_states: Tensor, encoder_hidden_states: Tensor | None = None,
                 attention_mask: Tensor | None = None, temb: Tensor | None = None, **kwargs) -> Tensor:
        if hidden_states.ndim != 3 or attn.group_norm is not None or attn.spatial_norm is not None or attn.norm_cross:
            raise ValueError("CrossAttentionRecorder handles the plain cross-attention of SD 1.x UNets only")
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probs = attn.get_attention_scores(query, key, attention_mask)  # [B * heads, HW, T]
        self.watch.record(probs.view(hidden_states.shape[0], -1, *probs.shape[1:]))
        out = attn.batch_to_head_dim(torch.bmm(probs, value))
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


class TokenWatch:
    """Hands the maps of the watched token positions, from every recorded layer and step, to ``sink``."""

    def __init__(self, tokens: list[int], latent_size: tuple[int, int], sink: AttentionSink) -> None:
        self.tokens = tokens
        self.latent_size = latent_size
        self.sink = sink

    def record(self, probs: Tensor) -> None:
        cond = probs[-1].mean(0)  # conditional branch (last in the CFG batch), mean over heads: [HW, T]
        hw = cond.shape[0]
        scale = int(round((self.latent_size[0] * self.latent_size[1] / hw) ** 0.5))
        h, w = self.latent_size[0] // scale, self.latent_size[1] // scale
        for t in self.tokens:  # a multi-token name gives one map per token
            self.sink(cond[:, t].reshape(h, w))


def class_token_positions(tokenize: Tokenize, prompt: str, name: str) -> list[int]:
    """Positions of ``name``'s tokens in the padded prompt; ValueError when the name is not in the prompt."""
    ids, sub = tokenize(prompt, True), tokenize(name, False)
    for start in range(len(ids) - len(sub) + 1):
        if ids[start:start + len(sub)] == sub:
            return list(range(start, start + len(sub)))
    raise ValueError(f"the tokens of {name!r} do not appear in the prompt {prompt!r}")


def load_diffusion(directory: Path | None, device: torch.device, random_weights: bool = False,
                   random_size: str = "tiny") -> DiffusionModel:
    """SD 1.5 from a diffusers directory, or random-weight modules (``directory=None, random_weights=True``; tests
    and speed figures only, the images and maps are meaningless): ``random_size`` ``tiny`` (diffusers' test sizes)
    or ``full`` (SD 1.5's architecture)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    if directory is None:
        if not random_weights:
            raise ValueError("load_diffusion needs a checkpoint directory; pass random_weights=True for a tiny model")
        if random_size not in ("tiny", "full"):
            raise ValueError(f"random_size must be tiny or full, got {random_size!r}")
        log.warning("Stable Diffusion built with RANDOM WEIGHTS (%s): its images are meaningless (test and speed "
                    "figures only)", random_size)
        with seeded_random_weights():
            return _random(device, full=random_size == "full")
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")

    def tokenize(text: str, special: bool) -> list[int]:
        if special:
            return tokenizer(text, padding="max_length", max_length=MAX_TOKENS, truncation=True).input_ids
        return tokenizer(text, add_special_tokens=False).input_ids

    return DiffusionModel(
        UNet2DConditionModel.from_pretrained(directory / "unet").eval().to(device),
        AutoencoderKL.from_pretrained(directory / "vae").eval().to(device),
        CLIPTextModel.from_pretrained(directory / "text_encoder").eval().to(device),
        tokenize, DDIMScheduler.from_pretrained(directory / "scheduler"), device)


def _random(device: torch.device, full: bool) -> DiffusionModel:
    """Random-weight modules with byte tokens: SD 1.5's UNet / VAE / CLIP ViT-L text encoder sizes (``full``), or a
    two-level UNet, a two-level VAE and a two-layer text encoder (diffusers' test sizes)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if full:  # SD 1.5: UNet2DConditionModel's defaults with 768-d text context; the VAE of its config
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
        text_cfg = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)
    else:
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
                                    block_out_channels=(32, 64),
                                    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                    attention_head_dim=8, norm_num_groups=8)
        vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            norm_num_groups=8)
        text_cfg = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    text = CLIPTextModel(CLIPTextConfig(**text_cfg, vocab_size=260, max_position_embeddings=MAX_TOKENS,
                                        bos_token_id=256, eos_token_id=257, pad_token_id=257))

    def tokenize(text_in: str, special: bool) -> list[int]:  # one token per word byte; 256 bos, 257 eos / pad
        words = [list(w.encode()) for w in text_in.lower().split()]
        ids = [b for w in words for b in w]
        return ([256, *ids, 257] + [257] * MAX_TOKENS)[:MAX_TOKENS] if special else ids

    return DiffusionModel(unet.eval().to(device), vae.eval().to(device), text.eval().to(device), tokenize,
                          DDIMScheduler(num_train_timesteps=1000), device)


def latent_size(model: DiffusionModel, size: tuple[int, int]) -> tuple[int, int]:
    """The latent (h, w) of an image of ``size`` (H, W): divided by the VAE's downsampling factor."""
    factor = 2 ** (len(model.vae.config.block_out_channels) - 1)
    return size[0] // factor, size[1] // factor


@torch.no_grad()
def synthesise(model: DiffusionModel, prompt: str, name: str, size: tuple[int, int], steps: int, guidance: float,
               generator: torch.Generator, sink: AttentionSink) -> np.ndarray:
    """The image [H, W, 3] uint8 of one prompt (``size`` = (H, W), multiples of the VAE's factor); every
    cross-attention map of ``name``'s tokens goes to ``sink``."""
    latent = latent_size(model, size)
    watch = TokenWatch(class_token_positions(model.tokenize, prompt, name), latent, sink)
    model.unet.set_attn_processor({k: CrossAttentionRecorder(watch) if k.endswith("attn2.processor") else proc
                                   for k, proc in model.unet.attn_processors.items()})
    ids = torch.tensor([model.tokenize("", True), model.tokenize(prompt, True)], device=model.device)
    context = model.text_encoder(ids)[0]
    sched = model.scheduler
    sched.set_timesteps(steps, device=model.device)
    latents = torch.randn((1, model.unet.config.in_channels, *latent), generator=generator,
                          device=generator.device).to(model.device) * sched.init_noise_sigma
    for t in sched.timesteps:
        inputs = sched.scale_model_input(torch.cat([latents] * 2), t)
        noise = model.unet(inputs, t, encoder_hidden_states=context).sample
        uncond, cond = noise.chunk(2)
        latents = sched.step(uncond + guidance * (cond - uncond), t, latents).prev_sample
    image = model.vae.decode(latents / model.vae.config.scaling_factor).sample[0]
    return ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
