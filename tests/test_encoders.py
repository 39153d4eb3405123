"""Speech encoder (frame counts, alignment, gradients), time jitter, and the log-mel head."""

from __future__ import annotations

import math

import pytest
import torch

from speechvq.config import default_config
from speechvq.config.speech import DataConfig, EncoderConfig, MelHeadConfig, code_hop
from speechvq.models.speech.decoders import MelDecoder, mel_l1_loss
from speechvq.models.speech.encoders import SpeechEncoder, time_jitter, utterance_normalize

PAPER = [2, 2, 2, 2, 2, 2]
PHONE = [2, 2, 2, 2, 2, 4, 5]
LENGTHS = [1, 639, 640, 1601]


def make_encoder(out_dim: int = 4, **enc) -> SpeechEncoder:
    torch.manual_seed(0)
    cfg = EncoderConfig(**{"channels": 8, "dilations": [1, 2], **enc})
    return SpeechEncoder(cfg, out_dim, DataConfig(n_mels=20))


@pytest.mark.parametrize("strides", [PAPER, PHONE], ids=["64x", "640x"])
@pytest.mark.parametrize("T", LENGTHS)
def test_wav_encoder_gives_ceil_t_over_hop_frames(strides, T):
    enc = make_encoder(strides=strides)
    assert enc.hop == math.prod(strides)
    z = enc(torch.randn(2, T))
    assert z.shape == (2, 4, -(-T // enc.hop))


@pytest.mark.parametrize("frame_stride,norm", [(1, False), (2, True), (4, False)])
@pytest.mark.parametrize("T", LENGTHS)
def test_logmel_encoder_gives_ceil_t_over_hop_frames(frame_stride, T, norm):
    enc = make_encoder(input="logmel", mel_frame_stride=frame_stride, utterance_norm=norm)
    assert enc.hop == 160 * frame_stride
    z = enc(torch.randn(2, T), lengths=torch.tensor([T, max(1, T // 2)]))
    assert z.shape == (2, 4, -(-T // enc.hop))
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("enc", [{"strides": PHONE}, {"input": "logmel", "mel_frame_stride": 4}])
def test_hop_matches_config_code_hop(enc):
    cfg = default_config()
    for key, value in enc.items():
        setattr(cfg.model.encoder, key, value)
    assert SpeechEncoder(cfg.model.encoder, 8, cfg.data).hop == code_hop(cfg)


def test_strides_larger_than_the_window_get_a_kernel_of_the_stride():
    enc = make_encoder(strides=PHONE, kernel_size=4)
    kernels = [m.kernel_size[0] for m in enc.front.modules() if isinstance(m, torch.nn.Conv1d)]
    assert kernels == [4, 4, 4, 4, 4, 4, 5]


@pytest.mark.parametrize("strides", [PAPER, PHONE], ids=["64x", "640x"])
def test_each_frame_is_centred_on_its_samples(strides):
    """Code i summarises samples [i*hop, (i+1)*hop): its receptive field is centred there."""
    enc = make_encoder(strides=strides, dilations=[])
    with torch.no_grad():
        for p in enc.parameters():
            p.abs_()  # positive weights + positive input: every ReLU passes, the support is full
    hop = enc.hop
    wav = torch.rand(1, 12 * hop, requires_grad=True)
    i = 6
    enc(wav)[0, :, i].sum().backward()
    support = wav.grad[0].nonzero().squeeze(1)
    assert support.numel() >= hop
    assert int(support.min()) + int(support.max()) == 2 * i * hop + hop - 1


@pytest.mark.parametrize("enc_cfg", [{"strides": PAPER}, {"input": "logmel", "utterance_norm": True}])
def test_gradient_reaches_every_encoder_parameter(enc_cfg):
    enc = make_encoder(**enc_cfg)
    enc(torch.randn(2, 1280)).pow(2).mean().backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_utterance_normalize_uses_only_valid_frames():
    torch.manual_seed(0)
    mel = torch.randn(2, 3, 10) * 4 + 7  # (B, n_mels, F)
    mel[1, :, 6:] = 1e4  # padding of item 1: 6 valid frames of hop 160 -> lengths 900
    out = utterance_normalize(mel, torch.tensor([1600, 900]), hop_length=160)
    torch.testing.assert_close(out[0].mean(-1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0].std(-1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    valid = out[1, :, :6]
    torch.testing.assert_close(valid.mean(-1), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(valid.std(-1, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)
    assert torch.equal(out[1, :, 6:], torch.zeros(3, 4))


# ------------------------------------------------------------------------------ time jitter


def test_time_jitter_is_identity_at_p0_and_in_eval():
    x = torch.randn(2, 3, 50)
    assert torch.equal(time_jitter(x, 0.0), x)
    assert torch.equal(time_jitter(x, 0.5, training=False), x)


def test_time_jitter_statistics_and_edges():
    B, T, p = 8, 4000, 0.4
    x = torch.arange(T, dtype=torch.float32).expand(B, 2, T).contiguous()  # (B, D, T)
    g = torch.Generator().manual_seed(0)
    y = time_jitter(x, p, generator=g)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.equal(y[:, 0], y[:, 1])  # a whole frame (all channels) moves together
    shift = (y[:, 0] - x[:, 0]).long()  # (B, T) source offset of each frame
    assert set(shift.unique().tolist()) <= {-1, 0, 1}
    inner = shift[:, 1:-1]
    n = inner.numel()
    assert abs((inner == -1).sum().item() / n - p / 2) < 0.02
    assert abs((inner == 1).sum().item() / n - p / 2) < 0.02
    assert (shift[:, 0] >= 0).all() and (shift[:, -1] <= 0).all()  # edges clamped
    y2 = time_jitter(x, p, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)  # seeded


# ------------------------------------------------------------------------------ mel head


@pytest.mark.parametrize("upsample", [1, 2, 4])
@pytest.mark.parametrize("kernel", [4, 5])
def test_mel_decoder_output_length_and_speaker_effect(upsample, kernel):
    torch.manual_seed(0)
    head = MelDecoder(MelHeadConfig(channels=8, layers=2, kernel_size=kernel), in_dim=6,
                      speaker_dim=3, n_mels=20, upsample=upsample)
    q = torch.randn(2, 6, 7)  # (B, D, Tc)
    spk = torch.randn(2, 3)
    out = head(q, spk)
    assert out.shape == (2, 20, 7 * upsample)
    other = head(q, torch.randn(2, 3))
    assert not torch.allclose(out, other)  # the speaker conditions every layer
    out.pow(2).mean().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mel_l1_loss_masks_and_crops():
    pred = torch.zeros(2, 4, 6)
    target = torch.ones(2, 4, 5)
    target[1, :, 3:] = 100.0  # padding frames of item 1
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    assert mel_l1_loss(pred, target, mask).item() == pytest.approx(1.0)
    assert mel_l1_loss(pred, torch.full((2, 4, 5), 2.0)).item() == pytest.approx(2.0)


@pytest.mark.parametrize("inp", ["wav", "logmel"])
def test_codes_do_not_depend_on_batch_mates(inp):
    """A short utterance padded in a batch encodes as it does alone (padding is masked)."""
    from speechvq.config import load_config
    overrides = [f"model.encoder.input={inp}", "model.encoder.channels=16"]
    if inp == "logmel":
        overrides.append("model.encoder.utterance_norm=true")
    cfg = load_config(None, overrides)
    enc = SpeechEncoder(cfg.model.encoder, 8, cfg.data).eval()
    g = torch.Generator().manual_seed(0)
    short, long = torch.randn(1, 5000, generator=g), torch.randn(1, 9000, generator=g)
    batch = torch.randn(2, 9000, generator=g)  # junk past the short one's length
    batch[0, :5000], batch[1] = short[0], long[0]
    with torch.no_grad():
        alone = enc(short, torch.tensor([5000]))  # (1, 8, Tc)
        together = enc(batch, torch.tensor([5000, 9000]))  # (2, 8, Tc')
    torch.testing.assert_close(together[:1, :, :alone.shape[-1]], alone, atol=1e-5, rtol=1e-5)
