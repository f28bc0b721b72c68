"""Data-parallel EMA codebooks: the `CodebookSync` that talks to a torch.distributed group.

Report Sec. 2.2.3 defines the EMA update over "a batch of residual vectors"; under data
parallelism that batch is the union of all ranks' batches. `DistributedCodebookSync`
makes every rank apply the update of that global batch:
- statistics: one all_reduce(SUM) per level of [n_k | Σr] packed as (K, 1 + D), so the
  EMA step equals the single-process step on the concatenated batch (up to float
  summation order) and is bitwise identical on every rank;
- choices (dead-entry restarts, k-means seeding): rank w draws ⌈R/W⌉ candidate rows from
  its own batch, an all_gather shares them, and row j is taken from rank j mod W. Every
  rank ends with the same rows, drawn from all ranks' data, and the traffic is R·D, not
  the whole batch. (Restarts therefore differ from a single-process run; the EMA part
  does not.)
`apply_codebook_sync(model)` broadcasts rank 0's quantizer buffers (so ranks start equal
even if built from different seeds) and installs the hook on every `ResidualVQ`.

Legend: K = codebook entries, D = dim, M = local candidates, R = rows asked for, W = ranks.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dina.errors import BadArgument
from dina.quantize.rvq import ResidualVQ
from dina.quantize.sync import sample_rows


class DistributedCodebookSync:
    """`CodebookSync` over a process group (default: the world). Gloo and NCCL both work."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise BadArgument("DistributedCodebookSync needs torch.distributed.init_process_group first")
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def reduce_stats_(self, counts_K: Tensor, sums_KD: Tensor) -> None:
        """Sum n_k and Σr over ranks in one collective, in place."""
        packed_KC = torch.cat([counts_K.unsqueeze(1), sums_KD], dim=1)
        dist.all_reduce(packed_KC, op=dist.ReduceOp.SUM, group=self.group)
        counts_K.copy_(packed_KC[:, 0])
        sums_KD.copy_(packed_KC[:, 1:])

    def choose_rows(self, candidates_MD: Tensor, n_rows: int, generator: torch.Generator) -> Tensor:
        """Row j comes from rank j mod W; identical (R, D) result on every rank."""
        per_rank = -(-n_rows // self.world)
        # Same seed on every rank, shifted by rank so replicated data still gives distinct rows.
        local_gen = torch.Generator().manual_seed((generator.initial_seed() + 7919 * self.rank) % (1 << 63))
        mine_PD = sample_rows(candidates_MD, per_rank, local_gen).contiguous()
        gathered = [torch.empty_like(mine_PD) for _ in range(self.world)]
        dist.all_gather(gathered, mine_PD, group=self.group)
        # (W, P, D) -> (P, W, D) -> rows ordered j = p·W + w, i.e. row j from rank j mod W.
        return torch.stack(gathered, dim=1).reshape(per_rank * self.world, -1)[:n_rows]


def apply_codebook_sync(model: nn.Module, group: dist.ProcessGroup | None = None) -> int:
    """Broadcast rank 0's codebook state and install the sync on every ResidualVQ; returns how many."""
    quantizers = [m for m in model.modules() if isinstance(m, ResidualVQ)]
    src = 0 if group is None else dist.get_global_rank(group, 0)
    for quantizer in quantizers:
        sync = DistributedCodebookSync(group)
        for buffer in quantizer.buffers():
            dist.broadcast(buffer, src=src, group=group)
        quantizer.set_sync(sync)
    return len(quantizers)
