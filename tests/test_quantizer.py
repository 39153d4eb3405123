"""VectorQuantizer: shapes, exact embed, EMA formula, straight-through gradient, restarts,
state_dict resume, autocast, peak memory, and gloo data parallelism equal to one process."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from speechvq.config import QuantizerConfig
from speechvq.errors import ConfigError, ModelError
from speechvq.models.quantizer import VectorQuantizer, VQStats

UPDATES = ("ema", "gradient")
LAYOUTS = {1: (2, 7), 2: (2, 3, 4), 3: (2, 2, 3, 2)}  # ndim -> (B, spatial...)


def make_z(ndim: int, channel_dim: int, dim: int = 4, seed: int = 0) -> torch.Tensor:
    """(B, D, ...) or (B, ..., D) random input for a 1-D, 2-D or 3-D map."""
    g = torch.Generator().manual_seed(seed)
    b, *spatial = LAYOUTS[ndim]
    z = torch.randn(b, dim, *spatial, generator=g)  # (B, D, ...)
    return z if channel_dim == 1 else z.movedim(1, -1).contiguous()  # (B, ..., D)


def collapse_(vq: VectorQuantizer, value: float = 0.0) -> None:
    """Every code at the same point (with EMA state consistent with it)."""
    with torch.no_grad():
        vq.codebook.fill_(value)
        if vq.update == "ema":
            vq.ema_count.fill_(1.0)
            vq.ema_sum.fill_(value)


@pytest.mark.parametrize("channel_dim", [1, -1])
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("update", UPDATES)
def test_shapes_stats_and_exact_embed(update, ndim, channel_dim):
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, channel_dim=channel_dim, update=update, restart_after=1)
    z = make_z(ndim, channel_dim)
    quantized, codes, loss, stats = vq(z, return_stats=True)
    no_channel = list(z.shape)
    del no_channel[channel_dim]
    assert quantized.shape == z.shape and quantized.dtype == z.dtype
    assert list(codes.shape) == no_channel and codes.dtype == torch.long
    assert loss.shape == () and loss.dtype == torch.float32 and loss.item() > 0
    assert isinstance(stats, VQStats) and stats.usage.shape == (8,)
    assert int(stats.usage.sum()) == codes.numel()
    assert int(stats.codes_used) == len(codes.unique())
    assert 1.0 <= float(stats.perplexity) <= int(stats.codes_used) + 1e-4
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    quantized, codes, _ = vq(z)
    assert torch.equal(vq.embed(codes), quantized)  # exact inverse
    assert torch.equal(vq.embed(codes).movedim(channel_dim, -1), vq.codebook[codes])
    for key, value in vq.state_dict().items():  # eval mode changes nothing
        assert torch.equal(value, before[key]), key


def test_nearest_matches_brute_force_across_chunks():
    torch.manual_seed(1)
    vq = VectorQuantizer(6, 13, chunk_size=7)
    flat = torch.randn(50, 6, dtype=torch.float64)  # any float dtype
    expected = torch.cdist(flat, vq.codebook.double()).argmin(1)
    assert torch.equal(vq.nearest(flat), expected)


@pytest.mark.parametrize("channel_dim", [1, -1])
def test_ema_update_equals_the_formula(channel_dim):
    vq = VectorQuantizer(2, 2, channel_dim=channel_dim, decay=0.5, epsilon=0.1)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
        vq.ema_sum.copy_(vq.codebook)
        vq.ema_count.fill_(1.0)
    points = torch.tensor([[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]])  # codes 0, 0, 1
    z = points.t().unsqueeze(0) if channel_dim == 1 else points.unsqueeze(0)  # (1, 2, 3)/(1, 3, 2)
    _, codes, loss = vq(z)
    assert codes.tolist() == [[0, 0, 1]]
    # n = [2, 1], sums = [[3, 1], [9, 9]]; N = 0.5 * 1 + 0.5 * n; m = 0.5 * e0 + 0.5 * sums
    assert torch.allclose(vq.ema_count, torch.tensor([1.5, 1.0]))
    assert torch.allclose(vq.ema_sum, torch.tensor([[1.5, 0.5], [9.5, 9.5]]))
    smoothed = torch.tensor([1.6 / 2.7 * 2.5, 1.1 / 2.7 * 2.5])  # (N + eps) / (n + K eps) * n
    expected = torch.tensor([[1.5, 0.5], [9.5, 9.5]]) / smoothed[:, None]
    torch.testing.assert_close(vq.codebook, expected)
    # loss = beta * mean((z - e0[code])^2) = 0.25 * (1 + 1 + 4 + 0 + 1 + 1) / 6
    torch.testing.assert_close(loss, torch.tensor(0.25 * 8 / 6))


@pytest.mark.parametrize("update", UPDATES)
def test_straight_through_gradient(update):
    torch.manual_seed(2)
    vq = VectorQuantizer(4, 8, update=update, beta=0.25)
    z = make_z(1, 1).requires_grad_()
    w = torch.randn(z.shape)  # d recon / d quantized
    before = vq.codebook.detach().clone()  # (K, D); the EMA step moves the codebook
    quantized, codes, loss = vq(z)
    ((quantized * w).sum() + loss).backward()
    q = before[codes].movedim(-1, 1)  # (B, D, T) the code vectors used
    expected = w + 0.25 * 2 * (z.detach() - q) / z.numel()  # d recon/dq + commitment gradient
    torch.testing.assert_close(z.grad, expected)


def test_gradient_mode_codebook_gets_only_the_codebook_loss_gradient():
    torch.manual_seed(3)
    vq = VectorQuantizer(4, 8, channel_dim=-1, update="gradient")
    assert isinstance(vq.codebook, torch.nn.Parameter)
    z = make_z(2, -1, seed=3)
    quantized, codes, loss = vq(z)
    ((quantized * torch.randn(z.shape)).sum() + loss).backward()
    flat, c = z.reshape(-1, 4), codes.reshape(-1)
    expected = torch.zeros(8, 4).index_add_(0, c, 2 * (vq.codebook.detach()[c] - flat)
                                            / flat.numel())
    torch.testing.assert_close(vq.codebook.grad, expected)


def clustered(n_clusters: int, dim: int, per: int, seed: int, offset: float = 20.0):
    """(n_clusters * per, dim) points around far-away, well-separated centres."""
    g = torch.Generator().manual_seed(seed)
    centres = offset + 8 * torch.randn(n_clusters, dim, generator=g)  # (C, D)
    return lambda step: (centres.repeat_interleave(per, 0)  # (N, D)
                         + 0.1 * torch.randn(n_clusters * per, dim,
                                             generator=torch.Generator().manual_seed(step)))


@pytest.mark.parametrize("restarts", [True, False])
@pytest.mark.parametrize("update", UPDATES)
def test_collapsed_start_recovers_only_with_restarts(update, restarts):
    torch.manual_seed(4)
    vq = VectorQuantizer(8, 16, channel_dim=-1, update=update,
                         restart_after=2 if restarts else 0)
    collapse_(vq)  # all codes identical, data far from them
    opt = torch.optim.Adam(vq.parameters(), lr=0.5) if update == "gradient" else None
    data = clustered(16, 8, 16, seed=4)
    for step in range(25):
        _, _, loss, stats = vq(data(step).unsqueeze(0), return_stats=True)  # (1, N, D)
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()
    if restarts:
        assert int(stats.codes_used) >= 14 and float(stats.perplexity) > 12
    else:
        assert int(stats.codes_used) == 1 and float(stats.perplexity) == pytest.approx(1.0)


def test_kmeans_init_finds_the_clusters():
    points = clustered(2, 8, 20, seed=5)(0)  # (40, 8): two far-apart clusters of 20
    means = torch.stack([points[:20].mean(0), points[20:].mean(0)])  # (2, D)
    for seed in range(4):  # Lloyd from any two seeds reaches the two cluster means here
        torch.manual_seed(seed)
        vq = VectorQuantizer(8, 2, channel_dim=-1, kmeans_init=True, kmeans_iters=5)
        _, _, _, stats = vq(points.unsqueeze(0), return_stats=True)
        assert bool(vq.initialised) and stats.usage.tolist() == [20, 20]
        order = vq.codebook[:, 0].argsort()
        torch.testing.assert_close(vq.codebook[order], means[means[:, 0].argsort()])


def test_kmeans_init_improves_on_its_seeds():
    points = clustered(6, 8, 20, seed=6)(0)  # (120, 8)

    def distortion(iters: int) -> float:
        torch.manual_seed(0)
        vq = VectorQuantizer(8, 6, channel_dim=-1, kmeans_init=True, kmeans_iters=iters)
        vq._kmeans_init_(points)
        return float(torch.cdist(points, vq.codebook).min(1).values.pow(2).mean())

    assert distortion(10) < 0.5 * distortion(0)


@pytest.mark.parametrize("update", UPDATES)
def test_state_dict_round_trip_resumes_exactly(update):
    torch.manual_seed(6)
    kw = dict(channel_dim=1, update=update, restart_after=1, kmeans_init=True, kmeans_iters=2)
    a = VectorQuantizer(4, 32, **kw)
    for step in range(3):
        a(make_z(1, 1, seed=step))
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    torch.manual_seed(99)
    b = VectorQuantizer(4, 32, **kw)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert bool(b.initialised) and torch.equal(a.unused_steps, b.unused_steps)
    z = make_z(1, 1, seed=10)
    torch.manual_seed(7)
    out_a = a(z)
    torch.manual_seed(7)
    out_b = b(z)
    for x, y in zip(out_a, out_b):
        assert torch.equal(x, y)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key


@pytest.mark.parametrize("update", UPDATES)
def test_autocast_bf16_keeps_codebook_math_float32(update):
    vq = VectorQuantizer(2, 2, channel_dim=-1, update=update)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[100.0, 0.0], [100.3, 0.0]]))
        if update == "ema":
            vq.ema_sum.copy_(vq.codebook)
    z = torch.tensor([[[100.2, 0.0]]])  # (1, 1, 2): nearer code 1 by 0.1, unresolvable in bf16
    with torch.autocast("cpu", dtype=torch.bfloat16):
        quantized, codes, loss = vq(z)
        q_bf16, codes_bf16, _ = vq(z.bfloat16())
    assert codes.tolist() == [[1]]
    assert quantized.dtype == torch.float32 and loss.dtype == torch.float32
    assert q_bf16.dtype == torch.bfloat16 and codes_bf16.tolist() == [[0]]  # 100.2 -> 100 in bf16
    assert vq.codebook.dtype == torch.float32
    if update == "ema":
        assert vq.ema_sum.dtype == torch.float32 and vq.ema_count.dtype == torch.float32


def test_nearest_under_autocast_equals_float32():
    g = torch.Generator().manual_seed(9)
    vq = VectorQuantizer(4, 16)
    with torch.no_grad():
        vq.codebook.copy_(30 + 0.1 * torch.randn(16, 4, generator=g))
    flat = 30 + 0.1 * torch.randn(200, 4, generator=g)  # (N, D) close codes far from 0
    reference = vq.nearest(flat)
    in_bf16 = torch.cdist(flat.bfloat16().float(), vq.codebook.bfloat16().float()).argmin(1)
    assert (in_bf16 != reference).sum() > 50  # bf16 arithmetic would change many codes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(vq.nearest(flat), reference)


def test_from_config_and_errors():
    cfg = QuantizerConfig(codebook_size=16, dim=3, update="gradient", restart_after=5)
    vq = VectorQuantizer.from_config(cfg, channel_dim=-1)
    assert vq.codebook.shape == (16, 3) and isinstance(vq.codebook, torch.nn.Parameter)
    assert vq.restart_after == 5 and vq.channel_dim == -1 and vq.beta == cfg.beta
    assert set(VectorQuantizer(3, 4).state_dict()) == {
        "codebook", "ema_count", "ema_sum", "initialised", "unused_steps"}
    with pytest.raises(ModelError, match="3 channels"):
        vq(torch.randn(2, 5, 4))
    with pytest.raises(ModelError, match=r"\[0, 16\)"):
        vq.embed(torch.tensor([0, 16]))
    with pytest.raises(ConfigError, match="update"):
        VectorQuantizer(3, 4, update="adam")


MEMORY_SCRIPT = textwrap.dedent("""
    import resource, torch
    torch.set_num_threads(1)
    from speechvq.models.quantizer import VectorQuantizer
    vq = VectorQuantizer(64, 512)
    flat = torch.randn(200_000, 64)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    codes = vq.nearest(flat)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert codes.shape == (200_000,) and int(codes.max()) < 512
    print((after - before) * 1024)
""")


def test_nearest_peak_memory_n200k_k512_d64():
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True)
    growth = int(out.stdout.split()[-1])  # bytes above the inputs (ru_maxrss is in KiB)
    assert growth < 0.5 * 2**30, f"nearest() grew peak RSS by {growth / 2**20:.0f} MiB"
    # measured 38 MiB at chunk 8192; one unchunked (N, K) matrix alone would add ~400 MiB
    assert growth < 128 * 2**20, f"nearest() grew peak RSS by {growth / 2**20:.0f} MiB"


# ---------------------------------------------------------------------- torch.distributed (gloo)


def _scenario(batches: list[torch.Tensor], rank: int = 0) -> dict[str, torch.Tensor]:
    """k-means init, two EMA steps, an explicit restart, one more step; the state after it."""
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 16, update="ema", kmeans_init=True, kmeans_iters=3)
    torch.manual_seed(1000 + rank)  # ranks draw differently: only rank 0's draws may count
    vq(batches[0])
    vq(batches[1])  # only some clusters: codes go unused
    vq.restart_after = 1
    restarted = vq.restart_dead_codes_(batches[1].movedim(1, -1).reshape(-1, 4))
    _, _, _, stats = vq(batches[2], return_stats=True)
    return {**vq.state_dict(), "restarted": torch.tensor(restarted), "usage": stats.usage}


def _batches() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    centres = 5 * torch.randn(6, 4, generator=g)  # (6, D)
    out = []
    for clusters in (6, 3, 6):
        idx = torch.randint(clusters, (4, 10), generator=g)  # (B, T)
        out.append((centres[idx] + 0.3 * torch.randn(4, 10, 4, generator=g)).movedim(-1, 1))
    return out  # each (B=4, D, T=10)


def _dist_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        mine = [b.chunk(2, dim=0)[rank] for b in _batches()]  # disjoint halves of each batch
        torch.save(_scenario(mine, rank), f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gloo_two_ranks_equal_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(_dist_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    single = _scenario(_batches())
    assert int(single["restarted"]) > 0
    for key, value in single.items():
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # every rank holds the same state
        torch.testing.assert_close(ranks[0][key], value, atol=1e-5, rtol=0, msg=key)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("update", UPDATES)
def test_cuda_matches_cpu_under_autocast(update):
    torch.manual_seed(8)
    cpu = VectorQuantizer(4, 32, update=update, chunk_size=5)
    gpu = VectorQuantizer(4, 32, update=update, chunk_size=5).cuda()
    gpu.load_state_dict(cpu.state_dict())
    z = make_z(1, 1)
    _, codes_cpu, _ = cpu(z)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        q, codes_gpu, loss = gpu(z.cuda())
    assert q.device.type == "cuda" and q.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.equal(codes_gpu.cpu(), codes_cpu)
    torch.testing.assert_close(gpu.codebook.cpu(), cpu.codebook)
