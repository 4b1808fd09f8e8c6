"""SAS Sec. 3.4: superpoint distillation (Eq. 10) and temporal-ensembling self-distillation (Eq. 11-13).

Point features F^3D [P, C] of the 3D network are distilled from the fused 2D point features F^2D_fusion (Sec. 3.3).
Superpoints are L non-overlapping segments ``segment`` [P] (ids 0..L-1). Our readings where the paper is silent:
- 2D superpoint means average only the points some training view sees (the others have no 2D feature); 3D means
  average every point of the superpoint, and F^2D_SP reaches every point of a superpoint with a seen point;
- the EMA (Eq. 11) runs on unit-normalised outputs, so every epoch weighs the same whatever its feature norms;
- Eq. 13 writes CE(argmax(F^3D . F_text^T), P^) literally; an argmax has no gradient, so the CE takes the cosine
  logits cos(F^3D, f_k) / temperature (temperature 0.07, CLIP's) against the pseudo labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def segment_mean(values: torch.Tensor, segment: torch.Tensor, num_segments: int,
                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of ``values`` [P, C] per segment over the points in ``mask`` (default all) -> ([L, C], point count [L])."""
    keep = torch.ones_like(segment, dtype=torch.bool) if mask is None else mask
    seg, vals = segment[keep], values[keep]
    total = values.new_zeros(num_segments, values.shape[1]).index_add(0, seg, vals)
    count = torch.bincount(seg, minlength=num_segments)
    return total / count.clamp(min=1)[:, None].to(values.dtype), count


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cos(a, b) per row."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-8)


def point_distillation_loss(student: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eq. 10's L_p = 1 - cos(F^2D, F^3D), averaged over the points in ``mask`` (F^2D: the per-point targets, F^2D_SP
    for superpoint distillation, the plain fused features for OpenScene's pixel-point distillation)."""
    if not bool(mask.any()):
        return student.sum() * 0.0
    return cosine_distance(student[mask], target[mask]).mean()


def superpoint_targets(target: torch.Tensor, segment: torch.Tensor, num_segments: int,
                       seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(f^2D_SP [L, C] over seen points, F^2D_SP [P, C] mapped back onto every point, [P] point has a target)."""
    means, count = segment_mean(target, segment, num_segments, seen)
    return means, means[segment], (count > 0)[segment]


def superpoint_distillation_loss(student: torch.Tensor, target_means: torch.Tensor, segment: torch.Tensor,
                                 num_segments: int, has_target: torch.Tensor) -> torch.Tensor:
    """Eq. 10's L_sp = 1 - cos(f^2D_SP, f^3D_SP), averaged over the superpoints with a 2D target."""
    student_means, _ = segment_mean(student, segment, num_segments)
    valid = torch.zeros(num_segments, dtype=torch.bool, device=segment.device)
    valid[segment[has_target]] = True
    if not bool(valid.any()):
        return student.sum() * 0.0
    return cosine_distance(student_means[valid], target_means[valid]).mean()


def ema_update(ensemble: torch.Tensor, current: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 11: F^ <- alpha F^ + (1 - alpha) F^3D (constant alpha in [0, 1))."""
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"the temporal-ensembling alpha must be in [0, 1), got {alpha}")
    return alpha * ensemble + (1.0 - alpha) * current


def pseudo_labels(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Eq. 12: argmax_k (F . f_k^T) per row."""
    return (features @ text.T).argmax(-1)


def cosine_logits(features: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """cos(F, f_k) / temperature for every row and class."""
    return F.normalize(features, dim=-1, eps=1e-8) @ F.normalize(text, dim=-1).T / temperature


def self_distillation_losses(student: torch.Tensor, ensemble: torch.Tensor, text: torch.Tensor,
                             segment: torch.Tensor | None, num_segments: int,
                             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 12-13: (L_p^ST, L_sp^ST), CE of the student's point / superpoint logits against the pseudo labels of the
    ensemble F^ and of its superpoint means f^_SP; L_sp^ST is 0 without superpoints."""
    point = F.cross_entropy(cosine_logits(student, text, temperature), pseudo_labels(ensemble, text))
    if segment is None:
        return point, student.sum() * 0.0
    student_means, count = segment_mean(student, segment, num_segments)
    ensemble_means, _ = segment_mean(ensemble, segment, num_segments)
    used = count > 0
    labels = pseudo_labels(ensemble_means[used], text)
    return point, F.cross_entropy(cosine_logits(student_means[used], text, temperature), labels)
