"""CUDA-graph generation for the WaveNet: the per-sample step on static buffers, captured once.

On a GPU the eager incremental sampler (`WaveNet._generate_eager`) is bound by launching its
few hundred small kernels per sample one at a time from Python, not by the GPU. This engine
writes the same step so that it can be recorded once as a CUDA graph (``torch.cuda.graph``,
the technique of nv-wavenet's persistent kernel brought to stock PyTorch) and replayed per
sample, one launch each. Everything the step touches is a tensor allocated before the capture
and read or written in place:

- one ring buffer for all layers, (B, sum of (k - 1) * d + 1, R), layer i's slots from offset i;
- the step count t, a (1,) int64 DEVICE tensor, advanced inside the graph: the slot written and
  the k slots read are tensor arithmetic on it (``offsets + t % sizes``, ``index_copy_`` and
  ``index_select``), so nothing in the captured region depends on a Python int or reads the GPU;
- the conditioning into every gate for a chunk of steps (one batched matrix product per chunk,
  off the per-sample path, as `fast_wavenet` does), the sampling noise of the current noise
  chunk (the very stream the eager loop reads, so that with the same generator both draw the
  same classes), and the prompt's classes with a per-step "given" flag, all copied in per
  chunk and indexed inside the graph by ``t % chunk``;
- the class drawn, written back into the next step's input and into a per-chunk output row.

``capture=False`` runs the same step op by op without a graph (on any device): on CPU this is
what proves the step equal to the eager engine (tests/test_graph_generation.py), and on a GPU
the captured replay runs exactly those kernels. A prompt runs through the same step
teacher-forced (its classes taken instead of the draw; the noise still read, as eager does).

    classes = net.generate(codes, speaker, engine="cuda_graph")     # on CUDA; 'auto' picks it
    logits = teacher_forced_logits(net, targets, codes, speaker)    # (B, O, T) == net(...)
"""

from __future__ import annotations

from typing import Iterator

import torch
from speechvq.progress import tqdm

from speechvq.models.speech.wavenet import NOISE_CHUNK

ROWS_BYTES = 256 << 20  # conditioning rows held per chunk on the device (bounds the chunk)
WARMUP_STEPS = 3  # eager steps on the capture stream before capturing (cuBLAS handles, pools)


def chunk_steps(batch: int, gate_width: int, noise_chunk: int) -> int:
    """Steps per conditioning chunk: the noise chunk, halved while its rows (B, chunk, L * G)
    float32 exceed ROWS_BYTES (a divisor of it, so a chunk never straddles two noise chunks)."""
    chunk = noise_chunk
    while chunk % 2 == 0 and batch * chunk * gate_width * 4 > ROWS_BYTES:
        chunk //= 2
    return chunk


class GraphStep:
    """The WaveNet's one-sample step on static buffers, optionally captured as a CUDA graph.

    Args:
        net: the WaveNet (its weights linearised by `WaveNet.init_state`, detached).
        batch: B utterances.
        temperature: >= 0 (baked into the step; 0 = the most probable class).
        noisy: whether a noise buffer is read (temperature > 0).
        keep_logits: also record every step's (B, O) output (teacher forcing).
        device: where the buffers live (the net's device).
    """

    def __init__(self, net, batch: int, temperature: float, noisy: bool,
                 keep_logits: bool = False, device: torch.device | None = None):
        self.net, self.batch, self.temperature = net, batch, temperature
        dtype = net.embed.weight.dtype
        device = net.embed.weight.device if device is None else device
        self.device = device
        state = net.init_state(batch, device=device, dtype=dtype)  # the eager path's weights
        self.state, self.w = state, state.weights
        cfg = net.cfg
        k, r = cfg.kernel_size, cfg.residual_channels
        self.gate = cfg.gate_channels
        self.layers = len(net.dilations)
        long = dict(device=device, dtype=torch.long)
        sizes = torch.tensor([(k - 1) * d + 1 for d in net.dilations], **long)  # (L,)
        self.sizes = sizes
        self.offsets = torch.cumsum(sizes, 0) - sizes  # (L,) first slot of each layer
        # tap j multiplies the input at t - (k - 1 - j) * d (the eager path's tap order)
        self.lags = ((k - 1 - torch.arange(k, **long)).unsqueeze(0)
                     * torch.tensor(net.dilations, **long).unsqueeze(1))  # (L, k)
        self.noise_chunk = NOISE_CHUNK
        self.chunk = chunk_steps(batch, self.layers * self.gate, self.noise_chunk)
        self.ring = torch.zeros(batch, int(sizes.sum()), r, device=device, dtype=dtype)
        self.t = torch.zeros(1, **long)  # (1,) samples produced so far, on the device
        self.prev = torch.full((batch,), net.start, **long)  # (B,) the next step's input
        self.rows = torch.zeros(batch, self.chunk, self.layers * self.gate, device=device,
                                dtype=dtype)  # (B, chunk, L * G)
        self.noise = (torch.zeros(self.noise_chunk, batch, net.noise_width, device=device)
                      if noisy else None)  # (noise chunk, B, W)
        self.given = torch.full((batch, self.chunk), net.silence, **long)  # (B, chunk)
        self.is_given = torch.zeros(self.chunk, device=device, dtype=torch.bool)  # (chunk,)
        self.out = torch.full((batch, self.chunk), net.silence, **long)  # (B, chunk)
        self.logits = (torch.zeros(batch, self.chunk, net.out_channels, device=device)
                       if keep_logits else None)  # (B, chunk, O)
        self.graph: torch.cuda.CUDAGraph | None = None

    def reset(self) -> None:
        """Back to t = 0: empty ring buffers, the net's `start` class as the first input."""
        self.ring.zero_()
        self.t.zero_()
        self.prev.fill_(self.net.start)

    def step(self) -> None:
        """One sample for every utterance, in place on the buffers (what the graph records).

        The layers and the head are `WaveNet._step`'s own (`_layer_step`, `_head_step`); the
        ring positions and the chunk's rows and noise are indexed by the device step count
        instead of a Python int."""
        w, net, batch, g = self.w, self.net, self.batch, self.gate
        t = self.t  # (1,)
        local = t % self.chunk  # (1,) row of this step in the chunk buffers
        write = self.offsets + t % self.sizes  # (L,) each layer's slot for its new input
        taps = (self.offsets.unsqueeze(1)
                + (t - self.lags) % self.sizes.unsqueeze(1))  # (L, k) slots of the k taps
        gates = self.rows.index_select(1, local).squeeze(1)  # (B, L * G)
        x = w["embed"].index_select(0, self.prev)  # (B, R)
        skip = None
        for i in range(self.layers):
            self.ring.index_copy_(1, write[i:i + 1], x.unsqueeze(1))  # (B, n_total, R)
            past = self.ring.index_select(1, taps[i]).reshape(batch, -1)  # (B, k * R)
            x, skip = net._layer_step(w, i, past, gates[:, i * g:(i + 1) * g], x, skip)
        logits = net._head_step(w, skip)  # (B, O)
        softmax = net.cfg.output == "softmax"
        u = (self.noise.index_select(0, t % self.noise_chunk).squeeze(0)
             if self.noise is not None else None)  # (B, W)
        drawn = net.sample(logits, self.temperature, None if softmax else u,
                           u if softmax else None)  # (B,)
        given = self.given.index_select(1, local).squeeze(1)  # (B,)
        self.prev.copy_(torch.where(self.is_given.index_select(0, local), given, drawn))
        self.out.index_copy_(1, local, self.prev.unsqueeze(1))
        if self.logits is not None:
            self.logits.index_copy_(1, local, logits.float().unsqueeze(1))
        self.t.add_(1)

    def capture(self) -> None:
        """Record `step` as a CUDA graph: a few eager steps on a side stream first (cuBLAS
        workspaces, the allocator's pool), the capture on that same stream, then `reset` (the
        warm-up advanced the state). Needs the first chunk's buffers filled (any values)."""
        with torch.cuda.device(self.device):  # the graph's device is the current one
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(WARMUP_STEPS):
                    self.step()
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=stream):
                self.step()
        self.graph = graph
        self.reset()

    def replay(self) -> None:
        """One step: the captured graph, or `step` op by op when nothing was captured."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self.step()

    def run(self, c: torch.Tensor, bias: torch.Tensor, steps: int,
            noise: Iterator[torch.Tensor] | None, given: torch.Tensor | None = None,
            capture: bool = False, progress: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run `steps` steps from t = 0, chunk by chunk.

        Args:
            c: (B, T >= steps, C) upsampled conditioning on the device.
            bias: (B, L * G) gate bias (`WaveNet._speaker_bias`).
            noise: the sampling noise chunk after chunk, as `WaveNet._noise` yields it (None
                when greedy).
            given: (B, P) classes taken as the first P samples' inputs to the next step
                (a prompt, or the targets under teacher forcing); None = P is 0.
            capture: record the step as a CUDA graph and replay it (CUDA only).
        Returns:
            classes (B, steps) int64 and, with ``keep_logits``, logits (B, steps, O) float32.
        """
        batch, device = self.batch, self.device
        out = torch.empty(batch, steps, dtype=torch.long, device=device)
        logits = (torch.empty(batch, steps, self.net.out_channels, device=device)
                  if self.logits is not None else None)
        cond_w = self.w["cond"].expand(batch, -1, -1)  # (B, C, L * G)
        n_given = 0 if given is None else given.shape[1]
        bar = tqdm(total=steps, disable=not progress, desc="wavenet (cuda graph)",
                   unit="sample")
        self.reset()
        for t0 in range(0, steps, self.chunk):
            n = min(self.chunk, steps - t0)
            if self.noise is not None and t0 % self.noise_chunk == 0:
                self.noise.copy_(next(noise))  # (noise chunk, B, W)
            self.rows[:, :n] = torch.baddbmm(bias.unsqueeze(1), c[:, t0:t0 + n].to(bias.dtype),
                                             cond_w)  # (B, n, L * G)
            m = max(0, min(n, n_given - t0))  # steps of this chunk whose class is given
            self.is_given.zero_()
            if m:
                self.given[:, :m] = given[:, t0:t0 + m]
                self.is_given[:m] = True
            if capture and self.graph is None:
                self.capture()
            for _ in range(n):
                self.replay()
            out[:, t0:t0 + n] = self.out[:, :n]
            if logits is not None:
                logits[:, t0:t0 + n] = self.logits[:, :n]
            bar.update(n)
        bar.close()
        return out, logits


@torch.no_grad()
def generate(net, c: torch.Tensor, speaker: torch.Tensor | None, steps: int,
             temperature: float, noise: Iterator[torch.Tensor] | None, progress: bool = False,
             prompt: torch.Tensor | None = None, capture: bool | None = None) -> torch.Tensor:
    """Sample `steps` classes per utterance on static buffers (the body of WaveNet.generate).

    Args:
        net: the WaveNet.
        c: (B, T >= steps, C) upsampled conditioning on the net's device.
        speaker: (B, S) speaker vectors (None when the net has none).
        steps: samples to produce.
        temperature: >= 0.
        noise: the sampling noise, chunk after chunk, exactly as the eager loop reads it; None
            when greedy.
        progress: show a tqdm bar.
        prompt: (B, P) int64 classes given as the first P samples (None = none).
        capture: record and replay a CUDA graph (None: when the net is on CUDA); False runs the
            same step op by op (how it is tested on CPU).
    Returns:
        (B, steps) int64 classes.
    """
    batch = c.shape[0]
    device = c.device
    capture = device.type == "cuda" if capture is None else capture
    runner = GraphStep(net, batch, temperature, noise is not None, device=device)
    bias = net._speaker_bias(speaker, runner.state, batch)  # (B, L * G)
    out, _ = runner.run(c, bias, steps, noise, prompt, capture=capture, progress=progress)
    return out


@torch.no_grad()
def teacher_forced_logits(net, targets: torch.Tensor, cond: torch.Tensor,
                          speaker: torch.Tensor | None,
                          capture: bool | None = None) -> torch.Tensor:
    """The static-buffer step under teacher forcing: equals ``net(targets, cond, speaker)``.

    Args:
        net: the WaveNet. targets: (B, T) int64. cond: (B, C, Tc) codes. speaker: (B, S).
        capture: as in `generate`.
    Returns:
        (B, out_channels, T) float32 logits (or mixture parameters).
    """
    batch, steps = targets.shape
    device = targets.device
    capture = device.type == "cuda" if capture is None else capture
    c = net.upsample(cond)[..., :steps].transpose(1, 2).contiguous()  # (B, T, C)
    runner = GraphStep(net, batch, 0.0, False, keep_logits=True, device=device)
    bias = net._speaker_bias(speaker, runner.state, batch)  # (B, L * G)
    _, logits = runner.run(c, bias, steps, None, targets, capture=capture)
    return logits.transpose(1, 2)
