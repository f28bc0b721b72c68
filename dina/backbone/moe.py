"""The LongCat-Flash MoE: routed SwiGLU experts plus zero-computation (identity) experts.

Report Sec. 2.4 (a modality-agnostic MoE backbone); LongCat-Flash-Omni report §2.3 (ScMoE with
zero-computation experts); `longcat-next-release.md` §1 "MoE router":
- router: logits = Linear(D -> E + Z, no bias) in fp32; scores = softmax over all E + Z;
- selection: top-k of `scores + correction_bias`; the bias only chooses experts, it never
  enters the weights (auxiliary-loss-free balancing);
- weights: the unbiased scores of the chosen experts, not renormalized, times
  `routed_scaling` (6.0 in the release);
- experts 0 … E-1 are SwiGLU (D -> H -> D); experts E … E+Z-1 are zero-computation
  "identity" experts contributing weight · x, scaled by `routed_scaling` like the others.

Balancing (the release ships only the bias; the rule is DeepSeek-V3's auxiliary-loss-free one):
`update_bias` moves each expert's correction bias by `bias_update_rate` towards balance,
b_x += u · sign(1/X − share_x), over routed and zero experts alike, so a starved expert becomes
easier to select and the share routed to zero experts drifts towards Z / (E + Z). (A proportional
step, u · (1/X − share_x), oscillated in our tests: whole groups of similar tokens flip at once.) The shortcut wiring (the MoE reads the first
attention's normed output and is added at the end of the layer) belongs to the decoder layer,
not to this module.

Shapes: N tokens, D width, H expert hidden width, E routed experts, Z zero experts, X = E + Z,
K experts per token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dina.config_io import ConfigBase, _check
from dina.errors import BadArgument


@dataclass(frozen=True, kw_only=True)
class MoEConfig(ConfigBase):
    """Sizes and routing constants of one MoE; the release: 3072 wide, 256 × 1024 experts, 128 zero, top 12."""

    dim: int
    n_experts: int
    expert_hidden: int
    n_zero_experts: int
    top_k: int
    routed_scaling: float = 6.0
    bias_update_rate: float = 1e-3

    def __post_init__(self) -> None:
        _check(min(self.dim, self.n_experts, self.expert_hidden, self.top_k) >= 1, f"MoE sizes must be >= 1: {self}")
        _check(self.n_zero_experts >= 0, "n_zero_experts must be >= 0")
        _check(
            self.top_k <= self.n_experts + self.n_zero_experts,
            f"top_k {self.top_k} exceeds the {self.n_experts + self.n_zero_experts} experts",
        )
        _check(self.routed_scaling > 0 and self.bias_update_rate >= 0, "routed_scaling > 0, bias_update_rate >= 0")

    @property
    def total_experts(self) -> int:
        return self.n_experts + self.n_zero_experts


@dataclass(frozen=True, kw_only=True)
class Routing:
    """Which experts each token uses, and with what weight."""

    indices_NK: torch.Tensor  # int64 in [0, X); >= E are zero experts
    weights_NK: torch.Tensor  # fp32: unbiased scores × routed_scaling
    scores_NX: torch.Tensor  # fp32 softmax over all experts


@dataclass(frozen=True, kw_only=True)
class MoEOutput:
    """The MoE's output and its routing counters (the data of the report's Fig. 11)."""

    out_ND: torch.Tensor
    indices_NK: torch.Tensor  # int64: each token's selected experts (>= E: zero experts)
    tokens_per_expert_X: torch.Tensor  # int64: selections per expert (sums to N · K)
    zero_share: torch.Tensor  # () fraction of the N · K selections that went to zero experts


class Router(nn.Module):
    """Softmax router over routed and zero experts with a selection-only correction bias."""

    correction_bias_X: torch.Tensor

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.weight = nn.Parameter(torch.empty(cfg.total_experts, cfg.dim))
        self.register_buffer("correction_bias_X", torch.zeros(cfg.total_experts))
        nn.init.normal_(self.weight, std=cfg.dim**-0.5)

    def forward(self, x_ND: torch.Tensor) -> Routing:
        scores_NX = F.linear(x_ND.float(), self.weight.float()).softmax(dim=-1)
        indices_NK = (scores_NX.detach() + self.correction_bias_X).topk(self.cfg.top_k, dim=-1).indices
        weights_NK = scores_NX.gather(1, indices_NK) * self.cfg.routed_scaling
        return Routing(indices_NK=indices_NK, weights_NK=weights_NK, scores_NX=scores_NX)

    @torch.no_grad()
    def update_bias(self, tokens_per_expert_X: torch.Tensor) -> None:
        """b_x += rate · sign(1/X − share_x): starved experts become easier to select."""
        share_X = tokens_per_expert_X.float() / tokens_per_expert_X.sum().clamp(min=1)
        self.correction_bias_X += self.cfg.bias_update_rate * torch.sign(1.0 / self.cfg.total_experts - share_X)


DENSE_MAX_TOKENS = 32  # up to this many tokens (decoding), every expert runs on every token


class SwiGLUExperts(nn.Module):
    """E SwiGLU experts held as stacked weights; tokens are gathered per expert, or, for a few
    tokens that select at least E experts in all (a decoding step), all experts run densely."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        E, D, H = cfg.n_experts, cfg.dim, cfg.expert_hidden
        self.gate_EDH = nn.Parameter(torch.randn(E, D, H) * D**-0.5)
        self.up_EDH = nn.Parameter(torch.randn(E, D, H) * D**-0.5)
        self.down_EHD = nn.Parameter(torch.randn(E, H, D) * H**-0.5)

    def forward(self, x_ND: torch.Tensor, indices_NK: torch.Tensor, weights_NK: torch.Tensor) -> torch.Tensor:
        """Σ over each token's routed experts of weight · expert(x); zero-expert slots are skipped."""
        N, K = indices_NK.shape
        E = self.gate_EDH.shape[0]
        if N <= DENSE_MAX_TOKENS and N * K >= E:
            return self._dense(x_ND, indices_NK, weights_NK)
        out_ND = torch.zeros_like(x_ND)
        for e in indices_NK.unique().tolist():
            if e >= self.gate_EDH.shape[0]:
                continue
            rows, slots = (indices_NK == e).nonzero(as_tuple=True)
            x = x_ND[rows]
            h = F.silu(x @ self.gate_EDH[e]) * (x @ self.up_EDH[e])
            out_ND.index_add_(0, rows, (h @ self.down_EHD[e]) * weights_NK[rows, slots, None].to(x.dtype))
        return out_ND

    def _dense(self, x_ND: torch.Tensor, indices_NK: torch.Tensor, weights_NK: torch.Tensor) -> torch.Tensor:
        """Every expert on every token in three batched matmuls, then the routed weights (zero for
        the experts a token did not choose): the same sum, without a per-expert loop."""
        E = self.gate_EDH.shape[0]
        # Broadcast matmuls, one per expert: an einsum here would copy both (E, D, H) weights
        # into one (D, E·H) matrix at every call.
        h_ENH = F.silu(torch.matmul(x_ND, self.gate_EDH)) * torch.matmul(x_ND, self.up_EDH)
        y_END = torch.bmm(h_ENH, self.down_EHD)
        # Every zero-expert slot lands in column E, which is dropped (no host sync for the largest index).
        w_NX = weights_NK.new_zeros(x_ND.shape[0], E + 1).scatter_add(1, indices_NK.clamp(max=E), weights_NK)
        return torch.einsum("end,ne->nd", y_END, w_NX[:, :E].to(x_ND.dtype))


class MoE(nn.Module):
    """Router + routed SwiGLU experts + zero-computation identity experts."""

    def __init__(self, cfg: MoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.router = Router(cfg)
        self.experts = SwiGLUExperts(cfg)

    def forward(self, x_ND: torch.Tensor) -> MoEOutput:
        """(N, D) -> MoEOutput; in training mode the correction bias is updated from this batch."""
        if x_ND.ndim != 2 or x_ND.shape[1] != self.cfg.dim:
            raise BadArgument(f"MoE expects (N, {self.cfg.dim}) tokens, got {tuple(x_ND.shape)}")
        routing = self.router(x_ND)
        out_ND, is_zero_NK = self._combine(x_ND, routing)
        counts_X = torch.bincount(routing.indices_NK.flatten(), minlength=self.cfg.total_experts)
        if self.training:
            self.router.update_bias(counts_X)
        zero_share = is_zero_NK.float().mean() if is_zero_NK.numel() else torch.zeros(())
        return MoEOutput(
            out_ND=out_ND, indices_NK=routing.indices_NK, tokens_per_expert_X=counts_X, zero_share=zero_share
        )

    def mix(self, x_ND: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, D): the output alone, without routing counters (decoding; eval mode)."""
        return self._combine(x_ND, self.router(x_ND))[0]

    def _combine(self, x_ND: torch.Tensor, routing: Routing) -> tuple[torch.Tensor, torch.Tensor]:
        """The routed experts' and the zero experts' weighted sum, and which slots were zero experts."""
        out_ND = self.experts(x_ND, routing.indices_NK, routing.weights_NK)
        is_zero_NK = routing.indices_NK >= self.cfg.n_experts
        identity_N = (routing.weights_NK * is_zero_NK).sum(dim=1)
        return out_ND + x_ND * identity_N[:, None].to(x_ND.dtype), is_zero_NK
