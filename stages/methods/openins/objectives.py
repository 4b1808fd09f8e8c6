"""OpenInsGaussian's feature-field objectives, plugged into ``train_feature_field`` (registered as ``objective``).

OpenInsGaussian (supplementary, after OpenGaussian) learns instance features with the intra-mask smoothing
loss L_s (Eq. 3) and the inter-mask contrastive loss L_c (Eq. 4) (``openins_instance``), then refines them against
the rendering of the codebook-quantised features with L_p (Eq. 7) (``openins_pseudo_gt``). The equations live in
``stages.methods.openins.losses``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from stages.methods import register
from stages.methods.openins.losses import (
    inter_mask_contrastive_loss,
    intra_mask_smoothing_loss,
    pseudo_gt_feature_loss,
)


def unit_gaussian_features(features: Tensor, means: Tensor) -> Tensor:
    """``unit_features``: every Gaussian's feature on the unit sphere before it is rendered and when it is saved, as
    OpenGaussian (whose training OpenInsGaussian follows) normalises its instance features (the supplement does not
    say). Without it L_c (Eq. 4) also falls by growing every feature's norm (our fields reach norms of 1.4-5.5), not
    only by separating directions. OpenGaussian further renders (u + 1) / 2, which halves all distances; we render u
    itself, so its L_c balance corresponds to ours with ``contrast_eps`` 4 (1 / (d^2 / 4 + 1) = 4 / (d^2 + 4))."""
    return torch.nn.functional.normalize(features, dim=-1)


@register("objective", "openins_instance")
class OpenInsInstanceObjective:
    """L = w_contrast L_c (Eq. 4) + w_smooth L_s (Eq. 3) on one view's rendered features and masks.

    Defaults are the OpenGaussian reference's: ``loss = L_separation + 0.1 * L_cohesion`` (its ``loss_weight``
    0.1; 0.01 on one LERF scene) and ``1 / (||F_i - F_j||^2 + 1)`` in the contrastive term, i.e.
    ``contrast_eps = 1``, which bounds the loss of coincident means. The reference additionally re-weights
    mask pairs by distance rank; the paper's equations do not, and neither does this objective.
    """

    def __init__(self, w_smooth: float = 0.1, w_contrast: float = 1.0, contrast_eps: float = 1.0,
                 unit_features: bool = False) -> None:
        self.w_smooth, self.w_contrast, self.contrast_eps = w_smooth, w_contrast, contrast_eps
        if unit_features:
            self.render_features = self.output_features = unit_gaussian_features

    def __call__(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        smooth = intra_mask_smoothing_loss(rendered, masks)
        contrast = inter_mask_contrastive_loss(rendered, masks, eps=self.contrast_eps)
        loss = self.w_contrast * contrast + self.w_smooth * smooth
        return loss, {"L_s": smooth.detach(), "L_c": contrast.detach()}


@register("objective", "openins_pseudo_gt")
class PseudoGTObjective:
    """L_p (Eq. 7): |M^p - M^c|_1 between the rendered features and the view's rendering of quantised features.

    ``target(view)`` returns the pseudo ground truth [H,W,D] of a view: the rendering in which every Gaussian's
    feature is replaced by its codebook leaf centre (computed without gradients). Masks are not used.
    """

    def __init__(self, target: Callable[[int], Tensor], unit_features: bool = False) -> None:
        self.target = target
        if unit_features:
            self.render_features = self.output_features = unit_gaussian_features

    def __call__(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        loss = pseudo_gt_feature_loss(rendered, self.target(view))
        return loss, {"L_p": loss.detach()}

