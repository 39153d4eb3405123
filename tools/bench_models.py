"""Benchmark the speech models: parameter counts, one training step, incremental generation.

    python tools/bench_models.py                 # paper-size and mini models, CPU
    python tools/bench_models.py --device cuda   # on a GPU

Prints, for the paper-size model (`speechvq config` defaults, 109 speakers as VCTK) and the mini
recipe's model (recipes/mini/conf/train.yaml + conf/wavenet.yaml, 12 speakers): parameters per
module, the time of one training step (forward, backward, AdamW), and WaveNet incremental
generation speed (the eager engine; tools/bench_generate.py times the fused ones) in samples per
second at batch 1 and 16, with the naive baseline measured in the
same run: a parallel forward over the receptive field (capped at the samples generated,
``--gen-samples``) for every new sample (what the per-layer buffers avoid), as the ratio the
buffers buy; where the cap bites, the ratio understates the gain.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from speechvq.config import load_config
from speechvq.models.speech.vqvae import VQVAE, count_parameters

ROOT = Path(__file__).resolve().parents[1]
MINI = [ROOT / "recipes/mini/conf/train.yaml", ROOT / "recipes/mini/conf/wavenet.yaml"]


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def bench(name: str, cfg, n_speakers: int, batch: int, window: int, device: torch.device,
          gen_samples: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, [f"s{i}" for i in range(n_speakers)]).to(device)
    parts = {k: count_parameters(getattr(model, k)) for k in
             ("encoder", "quantizer", "speaker_embedding", "wavenet", "mel_decoder")
             if getattr(model, k) is not None}
    print(f"\n== {name}: {count_parameters(model):,} parameters ("
          + ", ".join(f"{k} {v:,}" for k, v in parts.items())
          + f"; codebook buffer {model.quantizer.codebook.numel():,})")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    wav = (torch.rand(batch, window, device=device) - 0.5) * 0.2
    spk = torch.arange(batch, device=device) % n_speakers

    def step():
        out = model(wav, spk)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
    print(f"train step, batch {batch} x {window} samples: {timed(step, repeats):.3f} s")
    if model.wavenet is None:
        return
    model.eval()
    wn = model.wavenet
    for b in (1, 16):
        n_codes = -(-gen_samples // model.hop)
        cond = torch.randn(b, model.quantizer.dim, n_codes, device=device)
        spk_vec = model.speaker_embedding(torch.zeros(b, dtype=torch.long, device=device))
        lengths = torch.full((b,), gen_samples, device=device)
        with torch.no_grad():
            t = timed(lambda: wn.generate(cond, spk_vec, lengths, engine="eager"), 1)
            # Baseline: a parallel forward over the last receptive field for every new sample.
            rf = min(wn.receptive_field, gen_samples)
            ctx = torch.full((b, rf), wn.silence, dtype=torch.long, device=device)
            c = cond[:, :, :max(1, -(-rf // model.hop))]
            naive_steps = 32
            t_naive = timed(lambda: [wn(ctx, c, spk_vec) for _ in range(naive_steps)], 1)
        fast = b * gen_samples / t
        naive = b * naive_steps / t_naive
        print(f"generation, batch {b:2d}: {fast:,.0f} samples/s incremental vs {naive:,.0f} "
              f"recomputing the receptive field ({rf} samples): {fast / naive:.1f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3, help="timed training steps (median)")
    p.add_argument("--gen-samples", type=int, default=1600, help="samples generated per item")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    paper = load_config(None, [])
    bench("paper-size (config defaults, 109 speakers)", paper, 109, 1, 16384, device,
          args.gen_samples, args.repeats)
    mini = load_config(MINI, [])
    bench("mini (recipes/mini conf/train.yaml + conf/wavenet.yaml, 12 speakers)", mini, 12,
          mini.train.batch_size, mini.data.window, device, args.gen_samples, args.repeats)


if __name__ == "__main__":
    main()
