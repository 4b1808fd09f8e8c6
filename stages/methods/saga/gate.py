"""The scale gate S: [0, 1] -> [0, 1]^D (SAGA Eq. 3 and 5): one linear layer followed by a sigmoid."""

from __future__ import annotations

import torch
from torch import Tensor

FEATURE_DIM = 32  # D (A.2)


class ScaleGate(torch.nn.Module):
    """S(s) = sigmoid(W s + b), shared by all Gaussians; ``gate(s)`` for scales [...] returns gates [..., D]."""

    def __init__(self, dim: int = FEATURE_DIM) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, dim)

    @property
    def dim(self) -> int:
        return self.linear.out_features

    def forward(self, scales: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(scales.float().unsqueeze(-1)))

    @torch.no_grad()
    def at(self, scale: float) -> Tensor:
        """S(s) [D] for one scale given as a Python number: the scale enters the kernels as an argument, so no
        host-to-device copy (a prompt's gate)."""
        return torch.sigmoid(torch.add(self.linear.bias, self.linear.weight[:, 0], alpha=float(scale)))

    def arrays(self) -> tuple[Tensor, Tensor]:
        """(weight [D], bias [D]) as stored beside the features."""
        return self.linear.weight.detach()[:, 0].clone(), self.linear.bias.detach().clone()

    @classmethod
    def from_arrays(cls, weight: Tensor, bias: Tensor) -> ScaleGate:
        gate = cls(int(weight.shape[0]))
        with torch.no_grad():
            gate.linear.weight.copy_(torch.as_tensor(weight).float().reshape(-1, 1))
            gate.linear.bias.copy_(torch.as_tensor(bias).float().reshape(-1))
        return gate.to(torch.as_tensor(weight).device)


def gated(features: Tensor, gates: Tensor) -> Tensor:
    """Eq. 3 / Eq. 5: f^s = S(s) (Hadamard) f, broadcasting gates [..., D] over features [..., D]."""
    return gates * features


def gated_cosine(features: Tensor, gates: Tensor, queries: Tensor, chunk: int = 262_144) -> Tensor:
    """cos(S(s_b) * f_n, q_b) for features [N,D], per-query gates [B,D] and gated queries [B,D] -> [N,B].

    Computed without materialising [N,B,D]: numerator f_n . (S_b * q_b), squared gated norm f_n^2 . S_b^2.
    """
    q = torch.nn.functional.normalize(queries.float(), dim=-1)
    num_w = (gates * q).T.contiguous()   # [D,B]
    den_w = (gates**2).T.contiguous()    # [D,B]
    out = []
    for start in range(0, len(features), chunk):
        f = features[start:start + chunk].float()
        out.append((f @ num_w) / torch.sqrt((f * f) @ den_w).clamp_min(1e-12))
    return torch.cat(out) if out else features.new_zeros((0, len(queries)))
