"""Fused CPU generation equals the eager reference: logits, samples, engine choice, conversion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechvq.config import load_config
from speechvq.config.speech import WaveNetConfig
from speechvq.convert import convert_waveforms
from speechvq.errors import ModelError
from speechvq.models.speech import fast_wavenet
from speechvq.models.speech.vqvae import VQVAE
from speechvq.models.speech.wavenet import WaveNet

COND, SPK, FACTOR = 6, 3, 5

pytestmark = [pytest.mark.skipif(not fast_wavenet.available(),
                                 reason="numba does not import: only the eager engine runs"),
              pytest.mark.usefixtures("one_thread")]  # tiny tensors (conftest)


def net_for(output="softmax", upsample="transposed", kernel=2, speaker_dim=SPK, layers=5,
            **cfg) -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(**{"layers": layers, "cycles": 2 if layers % 2 == 0 else 1,
                           "kernel_size": kernel, "residual_channels": 12, "gate_channels": 20,
                           "skip_channels": 10, "upsample": upsample, "output": output,
                           "mixtures": 3, **cfg})
    return WaveNet(cfg, cond_channels=COND, speaker_dim=speaker_dim,
                   upsample_factor=FACTOR).eval()


def inputs(batch, frames, speaker_dim=SPK, seed=1):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, COND, frames, generator=g)  # (B, C, Tc)
    speaker = torch.randn(batch, speaker_dim, generator=g) if speaker_dim else None  # (B, S)
    targets = torch.randint(0, 256, (batch, frames * FACTOR), generator=g)  # (B, T)
    return cond, speaker, targets


@pytest.mark.parametrize("output", ["softmax", "mol"])
@pytest.mark.parametrize("upsample", ["transposed", "repeat"])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("batch", [1, 3])
def test_fused_logits_equal_eager(output, upsample, kernel, batch):
    net = net_for(output, upsample, kernel)
    cond, speaker, targets = inputs(batch, frames=40)  # T = 200 > receptive field (31 or 61)
    assert targets.shape[1] > net.receptive_field  # every ring buffer wraps around
    with torch.no_grad():
        eager = net(targets, cond, speaker)  # (B, O, T)
    fused = fast_wavenet.teacher_forced_logits(net, targets, cond, speaker, threads=2)
    torch.testing.assert_close(fused, eager, atol=1e-4, rtol=1e-4)
    if output == "softmax":
        torch.testing.assert_close(fused.softmax(1), eager.softmax(1), atol=1e-6, rtol=1e-5)


def test_fused_logits_without_speaker():
    net = net_for(speaker_dim=0, layers=3, kernel=3)
    cond, _, targets = inputs(2, frames=12, speaker_dim=0)
    with torch.no_grad():
        eager = net(targets, cond, None)
    torch.testing.assert_close(fast_wavenet.teacher_forced_logits(net, targets, cond, None),
                               eager, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("output,seeds", [("softmax", (0, 1, 2)), ("mol", (0, 1))])
def test_fused_samples_equal_eager_over_2000_steps(output, seeds):
    net = net_for(output, "repeat")
    cond, speaker, _ = inputs(2, frames=410)  # 2050 samples: across two noise chunks
    lengths = torch.tensor([2050, 2001])
    for seed in seeds:
        runs = {e: net.generate(cond, speaker, lengths, engine=e,
                                generator=torch.Generator().manual_seed(seed))
                for e in ("eager", "fused")}
        assert runs["eager"].shape == (2, 2050)
        assert torch.equal(runs["fused"], runs["eager"]), seed
        assert (runs["fused"][1, 2001:] == net.silence).all()  # past the length: silence
        assert len(runs["fused"][0].unique()) > 10  # a real draw, not a constant


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_greedy_and_batch_groups_equal_eager(output):
    net = net_for(output)
    cond, speaker, _ = inputs(2 * fast_wavenet.GROUP_ROWS + 1, frames=30)
    greedy = net.generate(cond, speaker, temperature=0, engine="eager")
    warm = net.generate(cond, speaker, temperature=0.7, engine="eager",
                        generator=torch.Generator().manual_seed(5))
    torch.set_num_threads(2)  # the fused engine runs 2 groups of the batch side by side
    assert torch.equal(net.generate(cond, speaker, temperature=0, engine="fused"), greedy)
    assert torch.equal(net.generate(cond, speaker, temperature=0.7, engine="fused",
                                    generator=torch.Generator().manual_seed(5)), warm)


@pytest.mark.skipif(not fast_wavenet.split_available(),
                    reason="the multi-thread split is built for x86-64 Linux only")
@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_parts_give_the_same_logits_and_classes(output):
    """Cut by output columns into 2 or 3 parts stepped by as many threads at once, the stack
    computes every output as the same sum in the same order: bit-equal logits (fp32 and bf16),
    and the eager engine's classes."""
    net = net_for(output, "repeat", kernel=3)
    cond, speaker, targets = inputs(3, frames=40)
    for bf16, cuts in ((False, (2, 3)), (True, (2,))):
        one = fast_wavenet.teacher_forced_logits(net, targets, cond, speaker, bf16=bf16)
        for parts in cuts:
            assert torch.equal(fast_wavenet.teacher_forced_logits(
                net, targets, cond, speaker, bf16=bf16, parts=parts), one), (bf16, parts)
    cond, speaker, _ = inputs(2, frames=100)
    eager = net.generate(cond, speaker, engine="eager", generator=torch.Generator().manual_seed(0))
    split = fast_wavenet.generate(
        net, net._cond_for(cond, 500).transpose(1, 2).contiguous(), speaker, 500, 1.0,
        net._noise(2, torch.Generator().manual_seed(0), torch.device("cpu")), parts=2)
    assert torch.equal(split, eager)


def test_thread_layout_cuts_only_big_weights():
    small = fast_wavenet.stack_for(net_for())
    assert fast_wavenet.thread_layout(small, 1, 2) == (1, 1)  # stays in L2: one thread
    assert fast_wavenet.thread_layout(small, 16, 2) == (2, 1)  # two groups of 8
    big = fast_wavenet.stack_for(net_for(layers=4, residual_channels=256, gate_channels=512,
                                         skip_channels=256))
    assert big.weight_bytes >= fast_wavenet.SPLIT_BYTES
    parts = 2 if fast_wavenet.split_available() else 1
    assert fast_wavenet.thread_layout(big, 1, 2) == (1, parts)
    assert fast_wavenet.thread_layout(big, 1, 1) == (1, 1)
    assert fast_wavenet.thread_layout(big, 64, 2) == (2, 1)  # large batches: groups


def test_bf16_weights_deviation_is_bounded():
    """bf16 rounds each weight by at most 2^-9 of itself; on this net the logits move by a few
    1e-4 (README, "Fast generation", gives the figures for the mini and paper-size nets)."""
    net = net_for(layers=6)
    cond, speaker, targets = inputs(2, frames=40)
    with torch.no_grad():
        eager = net(targets, cond, speaker)
    bf16 = fast_wavenet.teacher_forced_logits(net, targets, cond, speaker, bf16=True)
    err = (bf16 - eager).abs().max().item()
    assert 1e-6 < err < 5e-3  # bf16 is used (not exact) and close
    torch.testing.assert_close(bf16.softmax(1), eager.softmax(1), atol=1e-3, rtol=0)
    classes = net.generate(cond, speaker, engine="fused_bf16",
                           generator=torch.Generator().manual_seed(0))
    assert classes.shape == targets.shape


def test_weights_laid_out_again_after_an_update():
    net = net_for()
    cond, speaker, targets = inputs(1, frames=10)
    first = fast_wavenet.stack_for(net)
    assert fast_wavenet.stack_for(net) is first  # kept while nothing changes
    with torch.no_grad():
        net.layers[2].conv.weight.add_(0.5)  # in place, as an optimiser step
        eager = net(targets, cond, speaker)
    assert fast_wavenet.stack_for(net) is not first
    torch.testing.assert_close(fast_wavenet.teacher_forced_logits(net, targets, cond, speaker),
                               eager, atol=1e-4, rtol=1e-4)


def test_engine_choice(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert fast_wavenet.resolve_engine("auto", cpu) == "fused"
    assert fast_wavenet.resolve_engine("auto", gpu) == "cuda_graph"  # tests/test_graph_...
    assert fast_wavenet.resolve_engine("auto", torch.device("mps")) == "eager"
    assert fast_wavenet.resolve_engine("eager", cpu) == "eager"
    with pytest.raises(ModelError, match="CPU only"):
        fast_wavenet.resolve_engine("fused_bf16", gpu)
    with pytest.raises(ModelError, match="choose one of auto, eager, fused, fused_bf16"):
        fast_wavenet.resolve_engine("cuda graph", cpu)
    # The config key picks the engine where generate is not told: 'eager' never runs the kernel.
    net = net_for(engine="eager")
    def refuse(*args, **kwargs):
        raise AssertionError("fused ran")

    monkeypatch.setattr(fast_wavenet, "generate", refuse)
    net.generate(*inputs(1, 4)[:2])
    with pytest.raises(AssertionError, match="fused ran"):
        net.generate(*inputs(1, 4)[:2], engine="auto")
    monkeypatch.setattr(fast_wavenet, "available", lambda: False)  # numba missing
    assert fast_wavenet.resolve_engine("auto", cpu) == "eager"
    with pytest.raises(ModelError, match="needs numba"):
        fast_wavenet.resolve_engine("fused", cpu)


def test_conversion_uses_the_fused_engine_and_matches_eager(monkeypatch):
    cfg = load_config(None, [
        "model.encoder.channels=8", "model.encoder.dilations=[1]", "model.encoder.strides=[4,5]",
        "model.quantizer.codebook_size=8", "model.quantizer.dim=4", "model.decoder.speaker_dim=4",
        "model.decoder.wavenet.layers=2", "model.decoder.wavenet.cycles=1",
        "model.decoder.wavenet.residual_channels=8", "model.decoder.wavenet.gate_channels=8",
        "model.decoder.wavenet.skip_channels=8"])
    torch.manual_seed(0)
    model = VQVAE.from_config(cfg, ["a", "b"]).eval()
    rng = np.random.default_rng(0)
    waves = [0.3 * rng.standard_normal(n).astype(np.float32) for n in (700, 333)]
    calls, kernel = [], fast_wavenet.generate

    def counted(*args, **kwargs):
        calls.append(kwargs.get("bf16"))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(fast_wavenet, "generate", counted)
    fused = convert_waveforms(model, waves, ["b", "a"], head="wavenet", seed=3)
    eager = convert_waveforms(model, waves, ["b", "a"], head="wavenet", seed=3, engine="eager")
    assert calls == [False]  # the default ('auto' on CPU) ran the fused fp32 kernel
    for f, e, w in zip(fused, eager, waves):
        assert f.shape == w.shape
        np.testing.assert_array_equal(f, e)
