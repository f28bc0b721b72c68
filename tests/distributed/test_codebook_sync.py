"""Two gloo processes with different data keep identical codebooks, equal to one process on the union."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dina.distributed import DistributedCodebookSync, apply_codebook_sync
from dina.errors import BadArgument
from dina.quantize import ResidualVQ, RVQConfig

WORLD, STEPS, BATCH = 2, 5, 48
# name -> (config overrides, install the sync?)
SCENARIOS = {
    "restarts": ({"kmeans_init": True, "kmeans_iters": 0, "dead_threshold": 2.0}, True),
    "ema_only": ({"kmeans_init": False, "dead_threshold": 0.0}, True),
    "weighted": ({"kmeans_init": False, "dead_threshold": 0.0, "residual_weight_power": 0.5}, True),
    "unsynced": ({"kmeans_init": False, "dead_threshold": 0.0}, False),
}


def _config(**overrides) -> RVQConfig:
    return RVQConfig(dim=6, codebook_sizes=(16, 8, 8), decay=0.9, **overrides)


def _batch(step: int, rank: int) -> torch.Tensor:
    return torch.randn(BATCH, 6, generator=torch.Generator().manual_seed(1000 * step + rank))


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        for name, (overrides, synced) in SCENARIOS.items():
            # Different seeds per rank: apply_codebook_sync must make the start equal.
            rvq = ResidualVQ(_config(seed=rank if synced else 0, **overrides))
            if synced:
                assert apply_codebook_sync(torch.nn.Sequential(rvq)) == 1
            restarts = sum(int(rvq(_batch(step, rank)).restarts_L.sum()) for step in range(STEPS))
            torch.save({**rvq.state_dict(), "restarts": torch.tensor(restarts)}, Path(out_dir) / f"{name}_{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, torch.Tensor]]]:
    tmp = tmp_path_factory.mktemp("sync")
    mp.spawn(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=True)
    return {name: [torch.load(tmp / f"{name}_{r}.pt") for r in range(WORLD)] for name in SCENARIOS}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_synced_ranks_stay_bitwise_identical_even_with_restarts(states) -> None:
    for name in ("restarts", "ema_only"):
        rank0, rank1 = states[name]
        assert _same(rank0, rank1), name
    assert int(states["restarts"][0]["steps"]) == STEPS
    assert int(states["restarts"][0]["restarts"]) > 0  # the restart path really ran


@pytest.mark.parametrize("name", ["ema_only", "weighted"])
def test_synced_ema_equals_one_process_on_the_concatenated_batch(states, name: str) -> None:
    # "weighted": residual weights are normalized by the mean over both ranks' rows, not each rank's.
    single = ResidualVQ(_config(seed=0, **SCENARIOS[name][0]))
    for step in range(STEPS):
        single(torch.cat([_batch(step, r) for r in range(WORLD)]))
    assert int(states[name][0]["restarts"]) == 0
    assert _same(states[name][0], states[name][1])
    for key, value in single.state_dict().items():
        assert torch.allclose(states[name][0][key].float(), value.float(), atol=1e-6), key


def test_without_sync_the_ranks_diverge(states) -> None:
    rank0, rank1 = states["unsynced"]
    assert not torch.equal(rank0["codebooks.0.embed_KD"], rank1["codebooks.0.embed_KD"])


def test_sync_needs_an_initialized_process_group() -> None:
    if dist.is_initialized():
        pytest.skip("a process group is already up in this interpreter")
    with pytest.raises(BadArgument, match="init_process_group"):
        DistributedCodebookSync()
