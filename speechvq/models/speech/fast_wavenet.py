"""Fused CPU generation for the WaveNet: engine choice, weight layout and the chunk driver.

The eager incremental sampler (`WaveNet.generate`'s reference loop) runs a few dozen small
PyTorch ops per sample, so on CPU most of its time is per-op overhead. The fused engines run the
whole per-sample loop in one compiled kernel (`fused_kernel`) and keep only per-chunk work here:
the weights laid out once per net (`stack_for`: ``(in, out)`` matrices, conditioning and speaker
projections kept apart), the sampling noise (the same stream the eager loop reads, so with the
same generator both draw the same classes), and the conditioning into every layer's gate,
computed as one matrix product per chunk of samples and only once per distinct conditioning
vector: with ``upsample: repeat`` a code frame has three (its edge samples see the neighbouring
codes), so the projection is paid per code frame rather than per sample.

``fused_bf16`` keeps the big matrices in bfloat16 (activations and sums stay float32), halving
the bytes streamed per step (the paper-size net: 47.7 MB -> 24.1 MB), which bound it at batch 1.
Its deviation from fp32 is the weights' rounding (README, "Fast generation"). The kernel
releases the GIL, so threads share the work in one of two ways (`thread_layout`): weights
larger than L2 are cut by columns into parts, every thread stepping the whole batch on its own
columns (the weights streamed once per step in all); small nets and large batches are split
into groups of at least GROUP_ROWS utterances, one thread each (each streams all the weights).

    classes = net.generate(codes, speaker, engine="fused")     # (B, T), as engine="eager"
    logits = teacher_forced_logits(net, targets, codes, speaker)   # (B, O, T) == net(...)
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import weakref
from typing import Iterator

import numpy as np
import torch
from speechvq.progress import tqdm

from speechvq.config.speech import WaveNetConfig
from speechvq.errors import ModelError
from speechvq.models.speech.fused_kernel import (FORCED, MOL, SOFTMAX, Chunk, Part, Shared,
                                                 StackWeights, available, run,
                                                 split_available)
from speechvq.models.speech.mol import mol_noise

ENGINES = next(f for f in dataclasses.fields(WaveNetConfig)
               if f.name == "engine").metadata["choices"]
ROWS_BYTES = 4 << 20  # conditioning rows computed per chunk (bounds the chunk's memory)
# Utterances per thread group at least (each group streams all the weights at every step): for
# the paper-size net at batch 16 on the 2-core machine, two groups of 8 ran at 1.24x (fp32) and
# 1.39x (bf16) of one group of 16 while the cores were free, at 0.7x while other jobs held them.
GROUP_ROWS = 8
# Weights larger than one core's L2 are cut by columns into parts stepped by several threads at
# once (`fused_kernel.Part`), each streaming only its own columns: one thread of the kernel
# streams the paper-size net's 47.7 MB well below what the memory delivers, so a second core
# adds rate (README "Fast generation": 1.32x of eager at batch 1 before this layout, 2.6-3.1x
# after; `fast_wavenet.generate(..., parts=1 or 2)` compares the two directly). The mini net
# (0.3 MB) stays in L2, where parts would only add their barriers (2 L + 4 per sample).
SPLIT_BYTES = 2 << 20
SPLIT_ROWS = 4 * GROUP_ROWS  # batches smaller than this are cut into parts, larger into groups
MAX_PARTS = 4  # parts of one batch at most (the barriers' cost grows with them)


ALIASES = {"cuda-graph": "cuda_graph"}  # issue 15's spelling, accepted on the command line


def resolve_engine(engine: str, device: torch.device) -> str:
    """'auto' -> 'fused' on CPU where numba imports, 'cuda_graph' on CUDA, else 'eager'; a
    forced engine is checked against the device."""
    engine = ALIASES.get(engine, engine)
    if engine not in ENGINES:
        raise ModelError(f"unknown WaveNet engine '{engine}'; choose one of {', '.join(ENGINES)}")
    if engine == "auto":
        if device.type == "cuda":
            return "cuda_graph"
        return "fused" if device.type == "cpu" and available() else "eager"
    if engine == "cuda_graph" and device.type != "cuda":
        raise ModelError(f"WaveNet engine 'cuda_graph' needs a CUDA GPU, the model is on "
                         f"{device}; use engine 'auto' (fused on CPU) or 'eager', or move the "
                         f"model to a GPU (--device cuda)")
    if engine.startswith("fused") and device.type != "cpu":
        raise ModelError(f"WaveNet engine '{engine}' runs on CPU only, the model is on "
                         f"{device}; use engine 'eager' or 'auto', or move the model to CPU")
    if engine.startswith("fused") and not available():
        raise ModelError(f"WaveNet engine '{engine}' needs numba (pip install numba); use "
                         f"engine 'eager' or 'auto'")
    return engine


def _bf16_bits(w: torch.Tensor) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even) -> its 16 bits as uint16."""
    return w.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)


def _np32(w: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(w.detach().float().cpu().numpy())


def _cut(n: int, parts: int) -> list[tuple[int, int]]:
    """[0, n) cut into `parts` contiguous ranges as even as they come."""
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


@dataclasses.dataclass
class FusedStack:
    """A gated residual stack ready for the fused kernel.

    Args:
        weights: what every part reads (`StackWeights`).
        full: the whole stack's matrices, float32 torch tensors (conv (L, k * R, G), rs
            (L, G / 2, R + K), rs_b, head1, head1_b, head2, head2_b), cut into parts on demand.
        cond: (C, L * G) float32 projection of the conditioning into every gate.
        gate_bias: (L * G,) float32 convolution biases.
        speaker: (S, L * G) float32 projection of the speaker vector, or None.
        bf16: True when the big matrices are bfloat16.
    """

    weights: StackWeights
    full: dict[str, torch.Tensor]
    cond: torch.Tensor
    gate_bias: torch.Tensor
    speaker: torch.Tensor | None
    bf16: bool
    _parts: dict[int, tuple[Part, ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_wavenet(cls, net, bf16: bool = False) -> "FusedStack":
        """Lay out a `WaveNet`'s weights (from its `_linearise`, the eager path's matrices)."""
        w = net._linearise()
        sizes = [(net.cfg.kernel_size - 1) * d + 1 for d in net.dilations]
        full = {"conv": torch.stack(w["conv"]).float(), "rs": torch.stack(w["rs"]).float(),
                "rs_b": torch.stack(w["rs_b"]).float()}
        full.update({k: w[k].float() for k in ("head1", "head1_b", "head2", "head2_b")})
        arrays = StackWeights(
            embed=_np32(w["embed"]), offsets=np.cumsum([0] + sizes[:-1]).astype(np.int64),
            sizes=np.asarray(sizes, np.int64), dilations=np.asarray(net.dilations, np.int64),
            skip_scale=float(net.skip_scale), gates=net.cfg.gate_channels // 2,
            skips=full["head1"].shape[0])
        return cls(arrays, full, w["cond"].float().cpu(), w["conv_b"].float().cpu(),
                   w["speaker"].float().cpu() if "speaker" in w else None, bf16)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the matrices streamed at every step (bf16 ones counted as 2 bytes)."""
        big = sum(self.full[k].numel() for k in ("conv", "rs"))
        return big * (2 if self.bf16 else 4) + 4 * sum(
            self.full[k].numel() for k in ("head1", "head2"))

    def parts(self, n: int) -> tuple[Part, ...]:
        """The stack cut by output columns into n parts (`fused_kernel.Part`), kept once cut."""
        if n not in self._parts:
            f, h = self.full, self.weights.gates
            r = f["rs"].shape[2] - self.weights.skips
            empty16, empty32 = np.zeros((0, 0, 0), np.uint16), np.zeros((0, 0, 0), np.float32)
            cut = []
            for (g0, g1), (r0, r1), (k0, k1), (o0, o1) in zip(
                    _cut(h, n), _cut(r, n), _cut(self.weights.skips, n),
                    _cut(f["head2"].shape[1], n)):
                conv = torch.cat([f["conv"][..., g0:g1], f["conv"][..., h + g0:h + g1]], -1)
                cols = [*range(r0, r1), *range(r + k0, r + k1)]
                rs = f["rs"][..., cols]
                cut.append(Part(
                    conv=empty32 if self.bf16 else _np32(conv),
                    conv16=_bf16_bits(conv) if self.bf16 else empty16,
                    rs=empty32 if self.bf16 else _np32(rs),
                    rs16=_bf16_bits(rs) if self.bf16 else empty16,
                    rs_b=_np32(f["rs_b"][:, cols]),
                    head1=_np32(f["head1"][:, k0:k1]), head1_b=_np32(f["head1_b"][k0:k1]),
                    head2=_np32(f["head2"][:, o0:o1]), head2_b=_np32(f["head2_b"][o0:o1]),
                    cols=np.asarray([g0, g1, r0, r1, k0, k1, o0, o1], np.int64)))
            self._parts[n] = tuple(cut)
        return self._parts[n]

    def shared(self, batch: int) -> Shared:
        """Fresh activations for a batch stepped by one or more parts."""
        w, f = self.weights, self.full
        return Shared(x=np.zeros((batch, w.embed.shape[1]), np.float32),
                      z=np.zeros((batch, w.gates), np.float32),
                      skip=np.zeros((batch, w.skips), np.float32),
                      h1=np.zeros((batch, w.skips), np.float32),
                      logits=np.zeros((batch, f["head2"].shape[1]), np.float32),
                      counter=np.zeros(16, np.int64))

    def gate_rows(self, c: torch.Tensor, bias: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Conditioning into every gate, once per distinct conditioning vector.

        Args:
            c: (B, n, C) upsampled conditioning of n consecutive samples.
            bias: (B, L * G) per-utterance gate bias (`speaker_bias`).
        Returns:
            rows (B, U, L * G) float32 and row_of (n,) int64: step s uses rows[:, row_of[s]].
        """
        new = torch.ones(c.shape[1], dtype=torch.bool)
        new[1:] = (c[:, 1:] != c[:, :-1]).any(dim=2).any(dim=0)  # a step unlike the one before
        row_of = torch.cumsum(new, 0) - 1  # (n,)
        rows = torch.baddbmm(bias.unsqueeze(1), c[:, new], self.cond.expand(c.shape[0], -1, -1))
        return rows.numpy(), row_of.numpy()  # (B, U, L * G), (n,)

    def speaker_bias(self, speaker: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, L * G): convolution biases plus the speaker's projection into every gate."""
        bias = self.gate_bias.expand(batch, -1)
        if self.speaker is None:
            return bias.contiguous()
        return torch.addmm(bias, speaker.float().cpu(), self.speaker)

    def chunk_steps(self, batch: int) -> int:
        """Steps per chunk: as many as keep the conditioning rows within ROWS_BYTES."""
        per_step = batch * self.cond.shape[1] * 4
        return max(1, min(4096, ROWS_BYTES // per_step))

    def init_state(self, batch: int, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed ring buffers (B, sum of sizes, R) and the first inputs (B,) = `first`."""
        w = self.weights
        buf = np.zeros((batch, int(w.sizes.sum()), w.embed.shape[1]), np.float32)
        return buf, np.full(batch, first, np.int64)


_STACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> {bf16: (key, stack)}


def stack_for(net, bf16: bool = False) -> FusedStack:
    """`FusedStack.from_wavenet(net, bf16)`, kept while the net lives and laid out again only
    after a parameter changes (a new tensor or an in-place update, as an optimiser step)."""
    key = tuple((p.data_ptr(), p._version) for p in net.parameters())
    kept = _STACKS.setdefault(net, {})
    if bf16 not in kept or kept[bf16][0] != key:
        kept[bf16] = (key, FusedStack.from_wavenet(net, bf16))
    return kept[bf16][1]


# ---------------------------------------------------------------------------------- driver


def _drive(net, stack: FusedStack, c: torch.Tensor, speaker: torch.Tensor | None, steps: int,
           mode: int, temperature: float = 0.0, noise: Iterator[torch.Tensor] | None = None,
           forced: np.ndarray | None = None, threads: int = 1, parts: int = 1,
           progress: bool = False, prompt: np.ndarray | None = None) -> np.ndarray:
    """Run the kernel chunk by chunk: (B, steps) int64 classes, or (B, steps, O) float32 logits
    in FORCED mode. The batch is split into `threads` groups, each its own state, run side by
    side (the kernel releases the GIL), and each group is stepped by `parts` threads at once
    (`FusedStack.parts`). A sampling run's first P steps run teacher-forced on `prompt` (B, P)
    (their noise skipped, as the eager loop does) and output the prompt."""
    batch = c.shape[0]
    bias = stack.speaker_bias(speaker, batch)  # (B, L * G)
    spans = [(int(g[0]), int(g[-1]) + 1) for g in np.array_split(np.arange(batch),
                                                                 max(1, min(threads, batch)))]
    states = [stack.init_state(b1 - b0, net.start) for b0, b1 in spans]
    cut = stack.parts(parts)
    shape = (batch, steps, net.out_channels) if mode == FORCED else (batch, steps)
    out = np.empty(shape, np.float32 if mode == FORCED else np.int64)
    empty = {2: np.zeros((0, 0), np.float32), 3: np.zeros((0, 0, 0), np.float32)}
    no_forced = np.zeros((0, 0), np.int64)
    gumbel, logistic = empty[3], empty[2]
    noise_t0, noise_n = 0, steps if noise is None else 0  # the steps the noise in hand covers
    per_chunk = stack.chunk_steps(batch)
    bar = tqdm(total=steps, disable=not progress, desc="wavenet (fused)", unit="sample")
    n_prompt = 0 if prompt is None or mode == FORCED else prompt.shape[1]
    if n_prompt:
        out[:, :n_prompt] = prompt
    t = 0
    while t < steps:
        if t == noise_t0 + noise_n:  # the noise in hand is used up: take the next chunk
            u = next(noise).float().cpu()
            noise_t0, noise_n = t, u.shape[0]
            if mode == SOFTMAX:
                gumbel = u.numpy()  # (n, B, Q)
            else:
                g, lg = mol_noise(u)  # (n, B, M), (n, B)
                gumbel, logistic = g.contiguous().numpy(), lg.contiguous().numpy()
        end = min(steps, t + per_chunk, noise_t0 + noise_n)
        in_prompt = t < n_prompt
        if in_prompt:
            end = min(end, n_prompt)
        rows, row_of = stack.gate_rows(c[:, t:end], bias)
        k0, k1 = t - noise_t0, end - noise_t0
        chunks, results = [], []
        for g, (b0, b1) in enumerate(spans):
            given = prompt if in_prompt else forced
            chunks.append(Chunk(
                rows[b0:b1], row_of,
                np.ascontiguousarray(gumbel[k0:k1, b0:b1]) if gumbel.size else gumbel,
                np.ascontiguousarray(logistic[k0:k1, b0:b1]) if logistic.size else logistic,
                no_forced if given is None else np.ascontiguousarray(given[b0:b1, t:end])))
            n_out = (b1 - b0, end - t) + shape[2:]
            if in_prompt:  # the prompt's steps: its classes in, their logits thrown away
                results.append((FORCED, no_forced,
                                np.empty((b1 - b0, end - t, net.out_channels), np.float32)))
            elif mode == FORCED:
                results.append((FORCED, no_forced, np.empty(n_out, np.float32)))
            else:
                results.append((mode, np.empty(n_out, np.int64), empty[3]))

        def work(job: tuple[int, int]) -> None:
            g, p = job
            (buf, prev), (how, classes, logits) = states[g], results[g]
            run(stack.weights, cut[p], p, parts, shareds[g], buf, prev, t, chunks[g], how,
                np.float32(temperature), stack.bf16, classes, logits)

        shareds = [stack.shared(b1 - b0) for b0, b1 in spans]
        _run_all(work, [(g, p) for g in range(len(spans)) for p in range(parts)])
        if not in_prompt:
            for (b0, b1), (how, classes, logits) in zip(spans, results):
                out[b0:b1, t:end] = logits if mode == FORCED else classes
        bar.update(end - t)
        t = end
    bar.close()
    return out


def _run_all(work, jobs: list) -> None:
    """work(job) for every job at once, each in its own thread (the caller runs the first).

    Every job must have a thread of its own from the start: the parts of a group wait for each
    other at barriers, so a pool that queued one behind another would never finish."""
    if len(jobs) == 1:
        work(jobs[0])
        return
    errors: list[BaseException] = []

    def guarded(job) -> None:
        try:
            work(job)
        except BaseException as error:  # re-raised in the caller
            errors.append(error)

    others = [threading.Thread(target=guarded, args=(job,), daemon=True) for job in jobs[1:]]
    for thread in others:
        thread.start()
    guarded(jobs[0])
    for thread in others:
        thread.join()
    if errors:
        raise errors[0]


def thread_groups(batch: int, threads: int) -> int:
    """Groups a batch runs as by default: one per thread, each of at least GROUP_ROWS."""
    return max(1, min(threads, batch // GROUP_ROWS))


def thread_layout(stack: FusedStack, batch: int, threads: int) -> tuple[int, int]:
    """(groups, parts) a batch runs as by default on `threads` threads.

    Weights larger than L2 (SPLIT_BYTES) are cut into parts and every thread steps the whole
    batch of up to SPLIT_ROWS utterances on its own columns, so that the weights are streamed
    once per step in all; otherwise (the mini net, whose weights stay in L2, or larger
    batches) the batch is split into groups of at least GROUP_ROWS utterances, each stepped by
    one thread and streaming all the weights."""
    if (split_available() and threads >= 2 and batch < SPLIT_ROWS
            and stack.weight_bytes >= SPLIT_BYTES):
        return 1, min(threads, MAX_PARTS)
    return thread_groups(batch, threads), 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[int]:
    """PyTorch on one thread while the kernel runs (yields the count it had): the few torch ops
    between chunks are small, and idle OpenMP workers spin-waiting on the cores the kernel
    needs made it 2.5x slower on 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield before
    finally:
        torch.set_num_threads(before)


@torch.no_grad()
def generate(net, c: torch.Tensor, speaker: torch.Tensor | None, steps: int,
             temperature: float, noise: Iterator[torch.Tensor] | None, progress: bool = False,
             bf16: bool = False, threads: int | None = None, parts: int | None = None,
             prompt: torch.Tensor | None = None) -> torch.Tensor:
    """Sample `steps` classes per utterance with the fused kernel (the body of WaveNet.generate).

    Args:
        net: the WaveNet (its weights laid out by `stack_for`).
        c: (B, T >= steps, C) upsampled conditioning, float32 on CPU.
        speaker: (B, S) speaker vectors (None when the net has none).
        steps: samples to produce.
        temperature: >= 0.
        noise: the sampling noise, chunk after chunk, exactly as the eager loop reads it
            (softmax: Gumbel (n, B, Q); mixture: uniform (n, B, M + 1)); None when greedy.
        progress: show a tqdm bar.
        bf16: bfloat16 weights.
        threads: batch groups run side by side; parts: threads stepping each group at once
            (both None: `thread_layout` on PyTorch's intra-op thread count; one None: 1).
        prompt: (B, P) int64 classes given as the first P samples (None = none).
    Returns:
        (B, steps) int64 classes.
    """
    stack = stack_for(net, bf16)
    mode = SOFTMAX if net.cfg.output == "softmax" else MOL
    with _one_torch_thread() as torch_threads:
        groups, default_parts = thread_layout(stack, c.shape[0], torch_threads)
        if threads is None and parts is None:
            threads, parts = groups, default_parts
        threads, parts = threads or 1, parts or 1
        out = _drive(net, stack, c, speaker, steps, mode, temperature, noise, threads=threads,
                     parts=parts, progress=progress,
                     prompt=None if prompt is None else np.ascontiguousarray(
                         prompt.cpu().numpy().astype(np.int64)))
    return torch.from_numpy(out)


@torch.no_grad()
def teacher_forced_logits(net, targets: torch.Tensor, cond: torch.Tensor,
                          speaker: torch.Tensor | None, bf16: bool = False,
                          threads: int = 1, parts: int = 1) -> torch.Tensor:
    """The fused kernel under teacher forcing: equals ``net(targets, cond, speaker)``.

    Args:
        net: the WaveNet. targets: (B, T) int64. cond: (B, C, Tc) codes. speaker: (B, S).
        bf16: bfloat16 weights. threads: batch groups run side by side. parts: threads
        stepping each group at once.
    Returns:
        (B, out_channels, T) float32 logits (or mixture parameters).
    """
    steps = targets.shape[1]
    c = net.upsample(cond.float())[..., :steps].transpose(1, 2).contiguous()  # (B, T, C)
    forced = np.ascontiguousarray(targets.cpu().numpy().astype(np.int64))
    with _one_torch_thread():
        out = _drive(net, stack_for(net, bf16), c, speaker, steps, FORCED, forced=forced,
                     threads=threads, parts=parts)
    return torch.from_numpy(out).transpose(1, 2)
