"""Benchmark WaveNet generation engines side by side, against the machine's own limits.

    python tools/bench_generate.py                       # mini and paper-size, batch 1 and 16
    python tools/bench_generate.py --batches 1,8,16,32 --repeats 5 --threads 1

For the mini recipe's WaveNet (recipes/mini/conf/train.yaml + conf/wavenet.yaml) and the
paper-size one (`speechvq config` defaults), with random weights, at each batch size it times
the eager incremental engine (PyTorch ops, the reference), the fused CPU kernel in fp32 and with
bf16 weights (`speechvq.models.speech.fast_wavenet`) and, at batch 1, the naive baseline (a
parallel forward over the receptive field, capped at ``--naive-context`` samples, for every new
sample). The engines are timed in turn for ``--repeats`` rounds and each keeps its best round:
on a shared machine the best round is the one least disturbed by other work, and interleaving
spreads the load over all engines alike. The eager engine runs with PyTorch's threads and with
one (on a loaded machine its OpenMP threads can be many times slower); the ratios are against
the faster of the two, measured in the same run.

Each figure reads against limits measured in the same run: the memory bandwidth of a large copy
(bytes read + written per second) and the FLOP rate of a large fp32 matrix product (PyTorch, all
its threads). FLOPs per sample count the multiply-adds of one step, twice (the fused engines
project the conditioning once per distinct vector: 3 per code frame with ``upsample: repeat``);
bytes per sample are the weights one step streams, over the batch (bf16 halves the big ones;
each thread group of the fused engines streams them all, the parts of one group a share each:
`fast_wavenet.thread_layout`).

Exactness, on the same nets: the fused engines' teacher-forced logits against the eager parallel
pass (max |difference| of logits and of probabilities), and whether the classes each engine drew
in the timed runs (same conditioning, same noise) equal the eager engine's.

The PixelCNN prior's sampling (random weights of egs/images/conf/prior.yaml's size: 64 channels,
10 layers, K = 512, 8x8 codes, class-conditional) is timed the same way: its cached sampler
against recomputing the whole grid for every code (`tools/bench_prior.py`).

The last line is one JSON object of the ratios (``<model>_b<batch>_<engine>_vs_eager``; fused =
fp32, also under ``fused_fp32``; ``pixelcnn_b<batch>_cached_vs_recompute``).

On a machine with CUDA (``--device auto``, the default, or ``--device cuda`` for the GPU part
alone) a second part times the same nets on the GPU, named in the output: the eager engine
on CUDA against the CUDA-graph engine (`speechvq.models.speech.graph_wavenet`), batch 1 / 8 /
16 / 32 (``--cuda-batches``), with the GPU's copy bandwidth and fp32 matmul rate measured in the
same run, the captured step's teacher-forced logits against the parallel pass (TF32 off), and
whether the graph drew the eager engine's classes. Its ratios join the JSON line as
``<model>_b<batch>_cuda_graph_vs_eager`` (``paper_b1_cuda_graph_vs_eager`` among them).

    python tools/bench_generate.py --device cuda           # the GPU part only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from speechvq.config import load_config
from speechvq.config.speech import code_hop
from speechvq.models.speech import fast_wavenet
from speechvq.models.speech.wavenet import WaveNet

ROOT = Path(__file__).resolve().parents[1]
MINI = [ROOT / "recipes/mini/conf/train.yaml", ROOT / "recipes/mini/conf/wavenet.yaml"]
ENGINES = ("eager", "fused", "fused_bf16")


def build(cfg) -> WaveNet:
    """The decoder WaveNet of `cfg`, random weights (speed does not depend on them)."""
    torch.manual_seed(0)
    dec = cfg.model.decoder
    return WaveNet(dec.wavenet, cfg.model.quantizer.dim, dec.speaker_dim, code_hop(cfg)).eval()


def cost(net: WaveNet) -> dict[str, float]:
    """Multiply-adds per sample of one step, per engine, and the weight bytes a step streams."""
    c = net.cfg
    r, g, k, skip = c.residual_channels, c.gate_channels, c.kernel_size, c.skip_channels
    big = c.layers * (k * r * g + g // 2 * (r + skip))  # dilated convs, residual|skip 1x1s
    head = skip * skip + skip * net.out_channels
    cond = net.cond_channels * g * c.layers  # into every gate, per conditioning vector
    distinct = 1.0 if c.upsample == "transposed" else min(1.0, 3 / net.upsample_factor)
    return {"eager": big + head + cond, "fused": big + head + cond * distinct,
            "bytes32": 4 * (big + head), "bytes16": 2 * big + 4 * head}


def memory_bandwidth(mb: int = 256) -> float:
    """Bytes per second of a large copy (read + write), best of 3."""
    a = np.ones(mb << 18, np.float32)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t))
    return best


def read_bandwidth(threads: int, mb: int = 256) -> float:
    """Bytes per second of summing a large array split over `threads` threads, best of 3 (numpy
    releases the GIL in the sum): the read rate one core, or all, can stream from memory."""
    import threading
    parts = np.array_split(np.ones(mb << 18, np.float32), threads)
    best = 0.0
    for _ in range(3):
        workers = [threading.Thread(target=np.sum, args=(p,)) for p in parts]
        t = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        best = max(best, (mb << 20) / (time.perf_counter() - t))
    return best


def matmul_flops(n: int = 2048) -> float:
    """FLOP/s of an n x n fp32 matrix product with PyTorch's threads, best of 3."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t))
    return best


def inputs(net: WaveNet, batch: int, samples: int, seed: int = 0):
    """Conditioning (B, C, frames) and speakers (B, S) for `samples` samples, on the net's
    device."""
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, net.cond_channels, -(-samples // net.upsample_factor), generator=g)
    speaker = torch.randn(batch, net.speaker_dim, generator=g) if net.speaker_dim else None
    device = net.embed.weight.device
    return cond.to(device), None if speaker is None else speaker.to(device)


def time_engine(net: WaveNet, engine: str, cond: torch.Tensor, speaker, samples: int,
                threads: int):
    """(samples per second over the batch, classes (B, samples)) of one `generate` call, with
    PyTorch on `threads` threads. On CUDA the noise is drawn on the GPU and the clock stops
    when the GPU has finished."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    lengths = torch.full((cond.shape[0],), samples)
    cuda = cond.device.type == "cuda"
    try:
        if cuda:
            torch.cuda.synchronize(cond.device)
        t = time.perf_counter()
        classes = net.generate(cond, speaker, lengths, engine=engine,
                               generator=torch.Generator(device=cond.device).manual_seed(0))
        if cuda:
            torch.cuda.synchronize(cond.device)
        return cond.shape[0] * samples / (time.perf_counter() - t), classes
    finally:
        torch.set_num_threads(before)


def time_naive(net: WaveNet, context: int, steps: int = 1) -> float:
    """Samples per second of recomputing a parallel forward over `context` samples per sample."""
    cond, speaker = inputs(net, 1, context)
    ctx = torch.full((1, context), net.silence, dtype=torch.long)
    with torch.no_grad():
        net(ctx, cond, speaker)
        t = time.perf_counter()
        for _ in range(steps):
            net(ctx, cond, speaker)
    return steps / (time.perf_counter() - t)


def exactness(net: WaveNet, steps: int) -> str:
    """Teacher-forced logits of the fused engines against the eager parallel pass."""
    cond, speaker = inputs(net, 2, steps, seed=1)
    targets = torch.randint(0, net.classes, (2, steps), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = net(targets, cond, speaker)  # (B, O, T)
    parts = []
    for bf16 in (False, True):
        got = fast_wavenet.teacher_forced_logits(net, targets, cond, speaker, bf16=bf16)
        dp = (got.softmax(1) - ref.softmax(1)).abs().max().item()
        parts.append(f"{'bf16' if bf16 else 'fp32'} max |dlogit| {(got - ref).abs().max():.1e}"
                     f" (logits up to {ref.abs().max():.1f}), max |dp| {dp:.1e}")
    return f"teacher forcing over {steps} samples x 2: " + "; ".join(parts)


def bench(name: str, net: WaveNet, args, bandwidth: float, peak: float,
          rate: int) -> dict[str, float]:
    c = cost(net)
    print(f"\n== {name}: {sum(p.numel() for p in net.parameters()):,} parameters, receptive "
          f"field {net.receptive_field}, {net.cfg.upsample} upsampling x{net.upsample_factor}; "
          f"per sample {2 * c['eager'] / 1e6:.2f} MFLOP eager, {2 * c['fused'] / 1e6:.2f} fused; "
          f"weights streamed per step {c['bytes32'] / 1e6:.1f} MB fp32, {c['bytes16'] / 1e6:.1f}"
          f" MB bf16")
    print(f"exactness: {exactness(net, args.exact_steps)}")
    ratios = {}
    threads = torch.get_num_threads()
    runs = [("eager", threads)] + ([("eager", 1)] if threads > 1 else []) + \
        [(e, threads) for e in ENGINES[1:]]
    for batch in args.batches:
        # Lengths from a first round, so that each timed call lasts about --seconds; at least
        # one code frame.
        cond, speaker = inputs(net, batch, 32000)
        probe = {run: time_engine(net, run[0], cond[..., :8], speaker, 64 if run[0] == "eager"
                                  else 512, run[1])[0] for run in runs}
        low = net.upsample_factor
        samples = {run: int(min(32000, max(low, probe[run] * args.seconds / batch)))
                   for run in runs}
        frames = -(-max(samples.values()) // net.upsample_factor) + 1
        cond = cond[..., :frames]  # one conditioning for all runs: equal prefixes comparable
        best, drawn = {run: 0.0 for run in runs}, {}
        for _ in range(args.repeats):
            for run in runs:
                r, drawn[run] = time_engine(net, run[0], cond, speaker, samples[run], run[1])
                best[run] = max(best[run], r)
        eager = max(best[run] for run in runs if run[0] == "eager")  # its best thread count
        ref = max((run for run in runs if run[0] == "eager"), key=lambda run: samples[run])
        context = min(args.naive_context, net.receptive_field)
        naive = time_naive(net, context) if batch == 1 else None
        groups, parts = fast_wavenet.thread_layout(fast_wavenet.stack_for(net), batch, threads)
        print(f"-- batch {batch}: samples/s over the batch, x real time ({rate} Hz), x eager; "
              f"GFLOP/s and GB/s of weights streamed (fraction of the limits measured above); "
              f"fused: {groups} group(s) of {parts} thread(s)")
        rows = [("naive", naive, f"recomputes {context} samples per sample")] if naive else []
        for run in runs:
            e, n = run[0], min(samples[run], samples[ref])
            same = torch.equal(drawn[run][:, :n], drawn[ref][:, :n])
            label = e if run[1] == threads else f"{e} ({run[1]} thread)"
            rows.append((label, best[run], f"{samples[run]} samples/utt" + (
                "" if e == "eager" else f"; classes {'==' if same else '!='} eager's over {n}")))
        for e, r, note in rows:
            flops = r * 2 * c["fused" if e.startswith("fused") else "eager"]
            wbytes = r / batch * c["bytes16" if e == "fused_bf16" else "bytes32"] * (
                groups if e.startswith("fused") else 1)  # each group streams all weights (the
            # parts of one group stream a share each)
            print(f"  {e:18s} {r:9,.{0 if r >= 100 else 2}f}  {r / rate:6.3f}x rt  "
                  f"{r / eager:6.2f}x  "
                  f"{flops / 1e9:5.1f} GFLOP/s ({flops / peak:4.0%})  {wbytes / 1e9:5.1f} GB/s "
                  f"({wbytes / bandwidth:4.0%})  [{note}]")
        for e in ENGINES[1:]:
            ratios[f"{name}_b{batch}_{e}_vs_eager"] = round(best[(e, threads)] / eager, 2)
        ratios[f"{name}_b{batch}_fused_fp32_vs_eager"] = ratios[f"{name}_b{batch}_fused_vs_eager"]
        if naive:
            ratios[f"{name}_b{batch}_eager_vs_naive"] = round(eager / naive, 1)
    return ratios


def bench_pixelcnn(args) -> dict[str, float]:
    """The PixelCNN prior's codes per second, cached sampler against full recompute."""
    from bench_prior import sampling_rates  # tools/, beside this script

    from speechvq.models.prior.pixelcnn import PixelCNNPrior
    torch.manual_seed(0)
    model = PixelCNNPrior(512, 64, 10, 3, n_classes=10).eval()
    print(f"\n== pixelcnn: {sum(p.numel() for p in model.parameters()):,} parameters, 8x8 codes "
          f"of K = 512, class-conditional; codes/s over the batch, best of {args.repeats}, 1 thread")
    ratios = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # its small per-row ops: idle OpenMP workers only spin
    for batch in args.batches:
        cached, naive = sampling_rates(model, batch, (8, 8), 10, args.repeats)
        print(f"  batch {batch:>3}: cached {cached:9,.0f}  full recompute {naive:9,.0f}  "
              f"{cached / naive:5.1f}x")
        ratios[f"pixelcnn_b{batch}_cached_vs_recompute"] = round(cached / naive, 2)
    torch.set_num_threads(before)
    return ratios


def cuda_limits(device: torch.device, mb: int = 1024, n: int = 8192) -> tuple[float, float]:
    """The GPU's bytes per second of a large copy (read + write) and fp32 matmul FLOP/s (TF32
    off, as the engines run), best of 3 each."""
    a = torch.ones(mb << 18, device=device)
    b = torch.empty_like(a)
    x, y = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = {"copy": 0.0, "mm": 0.0}
    for _ in range(4):  # the first round warms up
        for what, work, amount in (("copy", lambda: b.copy_(a), 2 * a.nbytes),
                                   ("mm", lambda: torch.mm(x, y), 2 * n ** 3)):
            torch.cuda.synchronize(device)
            t = time.perf_counter()
            work()
            torch.cuda.synchronize(device)
            best[what] = max(best[what], amount / (time.perf_counter() - t))
    return best["copy"], best["mm"]


def cuda_exactness(net: WaveNet, steps: int) -> str:
    """The captured step's teacher-forced logits against the parallel pass on the GPU."""
    from speechvq.models.speech import graph_wavenet

    cond, speaker = inputs(net, 2, steps, seed=1)
    targets = torch.randint(0, net.classes, (2, steps), generator=torch.Generator().manual_seed(2))
    targets = targets.to(cond.device)
    with torch.no_grad():
        ref = net(targets, cond, speaker)  # (B, O, T)
    got = graph_wavenet.teacher_forced_logits(net, targets, cond, speaker, capture=True)
    dp = (got.softmax(1) - ref.softmax(1)).abs().max().item()
    return (f"captured step, teacher forcing over {steps} samples x 2: max |dlogit| "
            f"{(got - ref).abs().max():.1e} (logits up to {ref.abs().max():.1f}), max |dp| "
            f"{dp:.1e}")


def bench_cuda(name: str, net: WaveNet, args, bandwidth: float, peak: float,
               rate: int) -> dict[str, float]:
    """Eager on CUDA against the CUDA-graph engine, batch by batch (as `bench` does on CPU)."""
    c = cost(net)
    print(f"\n== {name} on {torch.cuda.get_device_name(net.embed.weight.device)}: "
          f"{2 * c['eager'] / 1e6:.2f} MFLOP and {c['bytes32'] / 1e6:.1f} MB of fp32 weights "
          f"per step")
    print(f"exactness: {cuda_exactness(net, args.exact_steps)}")
    runs, ratios = ("eager", "cuda_graph"), {}
    for batch in args.cuda_batches:
        cond, speaker = inputs(net, batch, 32000)
        probe = {e: time_engine(net, e, cond[..., :8], speaker, 64 if e == "eager" else 512,
                                1)[0] for e in runs}
        samples = {e: int(min(32000, max(net.upsample_factor, probe[e] * args.seconds / batch)))
                   for e in runs}
        cond = cond[..., :-(-max(samples.values()) // net.upsample_factor) + 1]
        best, drawn = {e: 0.0 for e in runs}, {}
        for _ in range(args.repeats):
            for e in runs:
                r, drawn[e] = time_engine(net, e, cond, speaker, samples[e], 1)
                best[e] = max(best[e], r)
        n = min(samples.values())
        differ = (drawn["cuda_graph"][:, :n] != drawn["eager"][:, :n]).any(dim=0).nonzero()
        same = ("== eager's" if differ.numel() == 0 else
                f"first differ from eager's at sample {int(differ[0])}") + f" over {n}"
        print(f"-- batch {batch}: samples/s over the batch, x real time ({rate} Hz), x eager "
              f"(CUDA); GFLOP/s and GB/s of weights streamed (fraction of the limits above)")
        for e in runs:
            r = best[e]
            flops, wbytes = r * 2 * c["eager"], r / batch * c["bytes32"]
            note = f"{samples[e]} samples/utt" + ("" if e == "eager" else f"; classes {same}")
            print(f"  {e:18s} {r:9,.{0 if r >= 100 else 2}f}  {r / rate:6.3f}x rt  "
                  f"{r / best['eager']:6.2f}x  {flops / 1e9:6.1f} GFLOP/s ({flops / peak:4.0%})"
                  f"  {wbytes / 1e9:6.1f} GB/s ({wbytes / bandwidth:4.0%})  [{note}]")
        ratios[f"{name}_b{batch}_cuda_graph_vs_eager"] = round(best["cuda_graph"] / best["eager"],
                                                               2)
    return ratios


def cuda_part(configs: dict, args) -> dict[str, float]:
    """The GPU half of the bench: limits, then every model (TF32 off for matmuls and convs)."""
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"\nGPU: {torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA "
          f"{torch.version.cuda})")
    bandwidth, peak = cuda_limits(device)
    print(f"GPU limits measured now: memory copy {bandwidth / 1e9:.0f} GB/s, fp32 matmul "
          f"{peak / 1e12:.1f} TFLOP/s")
    ratios = {}
    for name in args.models.split(","):
        if name == "pixelcnn":  # timed on CPU only
            continue
        cfg = configs[name]
        ratios.update(bench_cuda(name, build(cfg).to(device), args, bandwidth, peak,
                                 cfg.data.sample_rate))
    return ratios


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds per engine (best kept)")
    p.add_argument("--seconds", type=float, default=1.5,
                   help="target length of a timed call (longer: less of the per-call set-up)")
    p.add_argument("--naive-context", type=int, default=1024,
                   help="samples the naive baseline recomputes per sample (at most the "
                        "receptive field)")
    p.add_argument("--exact-steps", type=int, default=256,
                   help="teacher-forced samples of the exactness check")
    p.add_argument("--models", default="mini,paper,pixelcnn",
                   help="comma-separated: mini, paper, pixelcnn")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads for every engine (default: PyTorch's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cpu: the CPU engines; cuda: eager on CUDA against the CUDA graph; "
                        "auto: the CPU part, then the CUDA part where CUDA is available")
    p.add_argument("--cuda-batches", default="1,8,16,32",
                   help="comma-separated batch sizes of the CUDA part")
    args = p.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.cuda_batches = [int(b) for b in args.cuda_batches.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    start = time.perf_counter()
    configs = {"mini": load_config(MINI, []), "paper": load_config(None, [])}
    ratios = {}
    if args.device != "cuda":
        ratios.update(cpu_part(configs, args))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        ratios.update(cuda_part(configs, args))
    print(f"\nelapsed {time.perf_counter() - start:.0f} s")
    print(json.dumps(ratios, sort_keys=True))


def cpu_part(configs: dict, args) -> dict[str, float]:
    """The CPU half of the bench: the fused kernel ready, the limits, then every model."""
    if not fast_wavenet.available():
        raise SystemExit("numba does not import: the fused engines cannot run")
    t = time.perf_counter()
    net = build(configs["mini"])
    fast_wavenet.teacher_forced_logits(net, torch.zeros(1, 4, dtype=torch.long),
                                       *inputs(net, 1, 4))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads (eager's intra-op; "
          f"the fused engines' parts or thread groups: fast_wavenet.thread_layout); fused "
          f"kernel ready "
          f"in {time.perf_counter() - t:.1f} s (compiled on first use, then numba's cache)")
    bandwidth, peak = memory_bandwidth(), matmul_flops()
    reads = {n: read_bandwidth(n) for n in sorted({1, torch.get_num_threads()})}
    print(f"limits measured now: memory copy {bandwidth / 1e9:.1f} GB/s (read + write), read "
          + ", ".join(f"{r / 1e9:.1f} GB/s on {n} thread{'s' if n > 1 else ''}"
                      for n, r in reads.items())
          + f"; fp32 matmul {peak / 1e9:.1f} GFLOP/s")
    ratios = {}
    for name in args.models.split(","):
        if name == "pixelcnn":
            ratios.update(bench_pixelcnn(args))
            continue
        cfg = configs[name]
        ratios.update(bench(name, build(cfg), args, bandwidth, peak, cfg.data.sample_rate))
    return ratios


if __name__ == "__main__":
    main()
