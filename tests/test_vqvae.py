"""The speech VQ-VAE: loss, gradients, masking, encode/decode, errors, a short training run."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from speechvq.config import load_config
from speechvq.errors import ConfigError, ModelError
from speechvq.models.speech.vqvae import VQVAE, count_parameters

SPEAKERS = ["spkA", "spkB", "spkC"]
TINY = [
    "model.encoder.channels=8", "model.encoder.dilations=[1,2]", "model.encoder.strides=[4,5,8]",
    "model.quantizer.codebook_size=16", "model.quantizer.dim=8", "model.quantizer.restart_after=0",
    "model.decoder.speaker_dim=4", "model.decoder.wavenet.layers=2",
    "model.decoder.wavenet.cycles=1", "model.decoder.wavenet.residual_channels=8",
    "model.decoder.wavenet.gate_channels=8", "model.decoder.wavenet.skip_channels=8",
    "model.decoder.mel.weight=1.0", "model.decoder.mel.channels=8", "model.decoder.mel.layers=2",
    "data.n_mels=20",
]  # hop 160 = the mel hop
HEADS = {"wavenet": ["model.decoder.mel.weight=0"],
         "mel": ["model.decoder.wavenet.weight=0"],
         "both": []}


def tiny(*overrides: str, speakers=SPEAKERS) -> VQVAE:
    cfg = load_config(None, [*TINY, *overrides])
    torch.manual_seed(0)
    return VQVAE.from_config(cfg, speakers)


def batch(B: int = 3, T: int = 1000, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T) / 16000.0
    f0 = 100.0 + 60.0 * torch.arange(B).unsqueeze(1)  # (B, 1) one "voice" per item
    wav = 0.4 * torch.sin(2 * math.pi * f0 * t) + 0.02 * torch.randn(B, T, generator=g)
    return wav, torch.arange(B) % len(SPEAKERS)


@pytest.mark.parametrize("update", ["ema", "gradient"])
@pytest.mark.parametrize("head", list(HEADS))
def test_forward_backward_reaches_every_parameter(update, head):
    model = tiny(f"model.quantizer.update={update}", *HEADS[head])
    assert (model.wavenet is None) == (head == "mel")
    assert (model.mel_decoder is None) == (head == "wavenet")
    wav, spk = batch()
    out = model(wav, spk, torch.tensor([1000, 700, 1000]))
    for name in ("loss", "nll", "bits_per_sample", "vq_loss", "mel_loss"):
        value = getattr(out, name)
        assert value.shape == () and value.dtype == torch.float32 and torch.isfinite(value), name
    torch.testing.assert_close(out.bits_per_sample, out.nll / math.log(2))
    wn_w = 0.0 if head == "mel" else 1.0
    mel_w = 0.0 if head == "wavenet" else 1.0
    torch.testing.assert_close(out.loss, wn_w * out.nll + out.vq_loss + mel_w * out.mel_loss)
    if head != "mel":
        assert 4.0 < out.nll.item() < 7.0  # about ln 256 = 5.55 nats at initialisation
    assert int(out.stats.usage.sum()) == 7 + 5 + 7  # valid codes only: ceil(700 / 160) = 5
    out.loss.backward()
    # Every trainable parameter gets a gradient (DDP needs that); the last WaveNet layer's
    # residual conv feeds nothing and is frozen.
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name  # encoder: straight-through
        else:
            assert name.startswith(f"wavenet.layers.{len(model.wavenet.layers) - 1}.res."), name
    if update == "gradient":
        assert isinstance(model.quantizer.codebook, nn.Parameter)


def test_padding_past_lengths_changes_nothing():
    model = tiny().eval()
    wav, spk = batch()
    lengths = torch.tensor([1000, 650, 333])
    junk = wav.clone()
    for i, n in enumerate(lengths.tolist()):
        junk[i, n:] = torch.randn(1000 - n)
    a, b = model(wav, spk, lengths), model(junk, spk, lengths)
    for name in ("loss", "nll", "vq_loss", "mel_loss"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), msg=name)


def test_encode_codes_and_vectors_leave_state_untouched():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wav, _ = batch(T=1001)
    codes, z_e = model.eval().encode(wav, return_vectors=True)
    assert codes.shape == (3, 7) and codes.dtype == torch.long  # ceil(1001 / 160)
    assert z_e.shape == (3, 8, 7)
    assert 0 <= int(codes.min()) and int(codes.max()) < 16
    _, ref, _ = model.quantizer(z_e)
    assert torch.equal(codes, ref)
    model.train().encode(wav)  # training mode: still no codebook update
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("head", ["wavenet", "mel"])
def test_decode_returns_requested_lengths(head):
    model = tiny().eval()
    codes = torch.randint(0, 16, (2, 8))  # 8 codes x hop 160 = 1280 samples
    wav = model.decode(codes, torch.tensor([0, 2]), head=head,
                       generator=torch.Generator().manual_seed(0))
    assert wav.shape == (2, 1280) and wav.dtype == torch.float32
    assert wav.abs().max() <= 1.0 and wav.abs().sum() > 0
    short = model.decode(codes, 1, head=head, lengths=torch.tensor([1000, 1270]),
                         generator=torch.Generator().manual_seed(0))
    assert short.shape == (2, 1270)
    assert torch.equal(short[0, 1000:], torch.zeros(270)) and short[0, :1000].abs().sum() > 0
    with pytest.raises(ModelError, match=r"\[0, 1280\]"):
        model.decode(codes, 0, head=head, lengths=torch.tensor([1281, 10]))


def test_decode_with_an_untrained_head_names_it_and_the_fix():
    model = tiny(*HEADS["wavenet"])
    codes = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ModelError, match=r"no 'mel' head.*model\.decoder\.mel\.weight.*'wavenet'"):
        model.decode(codes, 0, head="mel")
    with pytest.raises(ModelError, match="unknown decoder head 'griffin'"):
        model.decode(codes, 0, head="griffin")
    with pytest.raises(ModelError, match="speaker index 3 is out of range"):
        model.decode(codes, 3, head="wavenet")


def test_unknown_speaker_lists_the_known_ones():
    model = tiny()
    assert model.speaker_index("spkB") == 1
    with pytest.raises(ModelError, match="unknown speaker 'p225'.*spkA, spkB, spkC"):
        model.speaker_index("p225")
    with pytest.raises(ModelError, match="duplicates"):
        tiny(speakers=["a", "a"])


def test_mel_head_needs_code_hop_multiple_of_mel_hop():
    with pytest.raises(ConfigError, match="data.hop_length"):
        tiny("model.encoder.strides=[2,2,2,2,2,2]")
    assert tiny("model.encoder.strides=[2,2,2,2,2,2]", *HEADS["wavenet"]).hop == 64
    assert tiny("model.encoder.input=logmel", "model.encoder.mel_frame_stride=2").hop == 320


def test_count_parameters():
    assert count_parameters(nn.Linear(3, 2)) == 8
    ema, grad = tiny(), tiny("model.quantizer.update=gradient")
    assert count_parameters(grad) - count_parameters(ema) == 16 * 8  # the codebook parameter
    parts = [ema.encoder, ema.wavenet, ema.mel_decoder, ema.speaker_embedding]
    assert count_parameters(ema) == sum(count_parameters(m) for m in parts)


@pytest.mark.parametrize("update", ["ema", "gradient"])
def test_a_short_training_run_lowers_the_loss(update, one_thread):
    model = tiny(f"model.quantizer.update={update}", "model.encoder.jitter=0.1",
                 "model.encoder.dropout=0.1")
    wav, spk = batch(B=4, T=1600)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        out = model(wav, spk, torch.full((4,), 1600))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert sum(losses[-3:]) / 3 < 0.75 * sum(losses[:3]) / 3, losses  # about 9.7 -> 5.4


def test_cpu_autocast_bf16_keeps_the_codebook_float32():
    model = tiny()
    wav, spk = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(wav, spk, torch.tensor([1000, 1000, 900]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.quantizer.codebook.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (runs on a GPU machine)")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_forward_backward_and_decode(dtype):
    model = tiny().cuda()
    wav, spk = batch()
    with torch.autocast("cuda", dtype=dtype):
        out = model(wav.cuda(), spk.cuda(), torch.tensor([1000, 800, 1000]))
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.quantizer.codebook.dtype == torch.float32
    codes = model.eval().encode(wav.cuda())
    assert codes.device.type == "cuda"
    for head in ("wavenet", "mel"):
        y = model.decode(codes, spk.cuda(), head=head, generator=torch.Generator("cuda"))
        assert y.shape == (3, 7 * 160) and y.device.type == "cuda"


def test_wavenet_crop_and_detached_codes():
    """train_window crops the WaveNet's loss to whole codes; detach_codes keeps its gradient out
    of the encoder (only the mel head then trains the codes)."""
    from speechvq.config import load_config
    overrides = ["model.encoder.input=logmel", "model.encoder.channels=8",
                 "model.encoder.dilations=[1]", "model.quantizer.codebook_size=8",
                 "model.quantizer.dim=4", "model.decoder.speaker_dim=2",
                 "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
                 "model.decoder.wavenet.residual_channels=4", "model.decoder.wavenet.gate_channels=4",
                 "model.decoder.wavenet.skip_channels=4", "model.decoder.wavenet.upsample=repeat",
                 "model.decoder.wavenet.train_window=700", "model.decoder.mel.weight=1",
                 "model.decoder.mel.channels=4", "model.decoder.mel.layers=1"]
    seen = []
    for detach in (False, True):
        cfg = load_config(None, overrides + [f"model.decoder.wavenet.detach_codes={detach}"])
        torch.manual_seed(0)
        model = VQVAE.from_config(cfg, ["a", "b"])
        model.wavenet.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1]))
        wav = torch.randn(2, 3200) * 0.1
        out = model(wav, torch.tensor([0, 1]))
        enc_grad = torch.autograd.grad(out.nll, model.encoder.out.weight, allow_unused=True)[0]
        assert (enc_grad is None or enc_grad.abs().sum() == 0) == detach
    assert seen == [960, 960]  # ceil(700 / 320) = 3 codes of 320 samples, of 10


def test_freeze_and_init_from():
    """A decoder head trained on frozen codes: the encoder and the EMA codebook stay put, and
    init_from_ copies the tensors a checkpoint shares with the model."""
    from speechvq.config import load_config
    base = ["model.encoder.input=logmel", "model.encoder.channels=8", "model.encoder.dilations=[1]",
            "model.quantizer.codebook_size=8", "model.quantizer.dim=4", "model.decoder.speaker_dim=2",
            "model.decoder.mel.weight=1", "model.decoder.mel.channels=4",
            "model.decoder.mel.layers=1"]
    wavenet = ["model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
               "model.decoder.wavenet.residual_channels=4", "model.decoder.wavenet.gate_channels=4",
               "model.decoder.wavenet.skip_channels=4", "model.decoder.wavenet.upsample=repeat"]
    torch.manual_seed(0)
    codes_model = VQVAE.from_config(load_config(None, base + ["model.decoder.wavenet.weight=0"]),
                                    ["a", "b"])
    full = VQVAE.from_config(load_config(None, base + wavenet), ["a", "b"])
    missing = full.init_from_({"model": codes_model.state_dict(), "speakers": ["a", "b"]}, "x")
    assert missing and all(k.startswith("wavenet.") for k in missing)
    for k, v in codes_model.state_dict().items():
        assert torch.equal(full.state_dict()[k], v), k
    with pytest.raises(ModelError, match="other speakers"):
        full.init_from_({"model": codes_model.state_dict(), "speakers": ["a", "c"]}, "x")

    full.freeze_(["encoder", "quantizer", "mel_decoder", "speaker_embedding"])
    full.train()
    assert not full.quantizer.training and not full.encoder.training and full.wavenet.training
    before = {k: v.clone() for k, v in full.state_dict().items() if not k.startswith("wavenet.")}
    opt = torch.optim.AdamW(full.parameters(), lr=1e-2)
    for _ in range(2):
        out = full(torch.randn(2, 1600) * 0.1, torch.tensor([0, 1]))
        out.loss.backward()
        opt.step()
        opt.zero_grad()
    for k, v in before.items():
        assert torch.equal(full.state_dict()[k], v), k  # encoder, codebook, mel head: unchanged
    with pytest.raises(ModelError, match="cannot freeze 'decoder'"):
        full.freeze_(["decoder"])
