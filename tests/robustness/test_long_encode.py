"""Long recordings in bounded memory: `VQVAE.encode` of 60 s of audio in pieces (forced small
here, so the recording spans many) gives exactly the codes and vectors of encoding it at once,
for raw-waveform and log-mel encoders, with per-utterance normalisation, in a padded batch."""

from __future__ import annotations

import pytest
import torch

import speechvq.models.speech.encoders as encoders
from speechvq.config import load_config
from speechvq.models.speech.vqvae import VQVAE

RATE, SECONDS = 16000, 60
BASE = ["model.encoder.channels=16", "model.encoder.dilations=[1,2,4]",
        "model.quantizer.codebook_size=32", "model.quantizer.dim=8", "model.decoder.speaker_dim=4",
        "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
        "model.decoder.wavenet.residual_channels=8", "model.decoder.wavenet.gate_channels=8",
        "model.decoder.wavenet.skip_channels=8", "data.n_mels=20"]


def recording(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(RATE * SECONDS) / RATE
    f0 = 120 + 40 * torch.sin(2 * torch.pi * 0.3 * t)
    x = torch.sin(2 * torch.pi * torch.cumsum(f0, 0) / RATE)
    return 0.3 * x * (1 + torch.sin(t)) / 2 + 0.02 * torch.randn(t.shape, generator=g)  # (T,)


@pytest.mark.parametrize("encoder", [["model.encoder.strides=[4,5,8]"],
                                     ["model.encoder.input=logmel",
                                      "model.encoder.utterance_norm=true"]],
                         ids=["wav", "logmel_utterance_norm"])
def test_pieces_give_the_codes_of_the_whole(encoder, monkeypatch, one_thread):
    torch.manual_seed(0)
    model = VQVAE.from_config(load_config(None, BASE + encoder), ["a"]).eval()
    wav = torch.stack([recording(0), recording(1)])  # (2, T)
    lengths = torch.tensor([wav.shape[1], wav.shape[1] - 12345])  # a padded batch
    for lens in (None, lengths):
        whole = model.encoder(wav, lens)  # (B, D, Tc): the at-once path
        monkeypatch.setattr(encoders, "CHUNK_SAMPLES", 2**14)  # ~1 s pieces: 60 of them
        codes, z_e = model.encode(wav, return_vectors=True, lengths=lens)
        codes_only = model.encode(wav, lengths=lens)  # quantised piece by piece
        monkeypatch.undo()
        assert torch.equal(codes_only, codes)
        assert z_e.shape == whole.shape
        torch.testing.assert_close(z_e, whole, rtol=0, atol=0)
        flat = whole.transpose(1, 2).reshape(-1, whole.shape[1])
        assert torch.equal(codes, model.quantizer.nearest(flat).view(codes.shape))


def test_context_covers_the_receptive_field(one_thread):
    """Changing the audio anywhere outside a span's context leaves its z_e bit for bit; changing
    it inside (next to the span) does not (so the test can fail)."""
    torch.manual_seed(0)
    model = VQVAE.from_config(load_config(None, BASE + ["model.encoder.strides=[4,5,8]"]),
                              ["a"]).eval()
    enc, hop = model.encoder, model.encoder.hop
    ctx = enc.context()
    wav = recording(0)[None, : 40 * hop]
    span = slice(20, 21)  # code 20: samples [20 hop, 21 hop)
    base = enc(wav)[..., span]
    far = wav.clone()
    far[:, : 20 * hop - ctx] += 0.5
    far[:, 21 * hop + ctx:] += 0.5
    torch.testing.assert_close(enc(far)[..., span], base, rtol=0, atol=0)
    near = wav.clone()
    near[:, 20 * hop - ctx + 2 * hop: 20 * hop] += 0.5
    assert not torch.equal(enc(near)[..., span], base)
