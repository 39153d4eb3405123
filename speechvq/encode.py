"""Encoding: a trained VQ-VAE turns every utterance of any data into codes (stage 3).

    model = load_vqvae("exp/mini")                       # exp dir or .pt file
    data = Utterances("dump/test", model.sample_rate)    # a dump or a Kaldi data dir
    codes = encode_utterances(model, data)               # {utt: (ceil(T / hop),) int64}

Frame timing (DESIGN.md): code i covers samples [i*hop, (i+1)*hop) at the model's rate and there
are ceil(T / hop) codes per utterance. Units files are written by `speechvq.data.codes`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from speechvq.progress import tqdm

from speechvq.data.codes import write_units
from speechvq.data.speech.utterances import Utterances
from speechvq.models.speech.vqvae import VQVAE, load_vqvae
from speechvq.device import pick_device

__all__ = ["load_vqvae", "encode_utterances", "encode_to_file", "pick_device"]


@torch.no_grad()
def encode_utterances(model: VQVAE, data: Utterances, *, batch_size: int = 8,
                      utts: Sequence[str] | None = None, vectors: bool = False,
                      progress: bool = True) -> dict[str, np.ndarray] | tuple[dict, dict]:
    """Codes (and optionally the encoder outputs z_e) of every utterance, batched.

    Args:
        model: a VQVAE in eval mode (see `load_vqvae`).
        data: the utterances, at the model's rate.
        batch_size: utterances per forward pass (padding is trimmed from the codes).
        utts: a subset to encode (default all, sorted).
        vectors: also return z_e per utterance, (T_codes, D) float32, for ABX.
        progress: tqdm bar over utterances.

    Returns:
        {utt: (ceil(T / hop),) int64 codes} [, {utt: (ceil(T / hop), D) float32}].
    """
    device = next(model.parameters()).device
    names = list(data.utts if utts is None else utts)
    codes_out: dict[str, np.ndarray] = {}
    vecs_out: dict[str, np.ndarray] = {}
    bar = tqdm(total=len(names), desc="encode", unit="utt", disable=not progress)
    for batch_utts, wav, lengths in data.batches(batch_size, names):
        codes, z_e = model.encode(wav.to(device), return_vectors=True,
                                  lengths=lengths.to(device))  # (B, Tc), (B, D, Tc)
        n_codes = (lengths + model.hop - 1) // model.hop  # (B,)
        for i, utt in enumerate(batch_utts):
            n = int(n_codes[i])
            codes_out[utt] = codes[i, :n].cpu().numpy().astype(np.int64)
            if vectors:
                vecs_out[utt] = z_e[i, :, :n].t().float().cpu().numpy()  # (n, D)
        bar.update(len(batch_utts))
    bar.close()
    return (codes_out, vecs_out) if vectors else codes_out


def encode_to_file(model_path: str | os.PathLike, data_path: str | os.PathLike,
                   out: str | os.PathLike, *, fmt: str = "kaldi", dedup: bool = False,
                   batch_size: int = 8, checkpoint: str | None = None, device: str = "auto",
                   progress: bool = True) -> dict[str, np.ndarray]:
    """`speechvq encode`: encode DATA with the model and write a units file (atomically).

    Returns:
        the frame-level codes per utterance (before any `dedup`).
    """
    model = load_vqvae(model_path, checkpoint=checkpoint, device=pick_device(device))
    data = Utterances(data_path, model.sample_rate)
    codes = encode_utterances(model, data, batch_size=batch_size, progress=progress)
    write_units(out, codes, format=fmt, dedup=dedup)
    return codes
