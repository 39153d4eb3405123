"""The CUDA-graph engine's static-buffer step equals the eager reference; capture on a GPU.

On CPU the step runs op by op (``capture=False``): its samples and teacher-forced logits are
checked against the eager engine. The capture and replay need CUDA and skip without it.
"""

from __future__ import annotations

import pytest
import torch

from speechvq.config.speech import WaveNetConfig
from speechvq.errors import ModelError
from speechvq.models.prior.causal import CausalPrior
from speechvq.models.speech import fast_wavenet, graph_wavenet
from speechvq.models.speech.wavenet import WaveNet

COND, SPK, FACTOR = 6, 3, 5
CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                          reason="needs a CUDA GPU: capture and replay of the step's graph")

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest)


def net_for(output="softmax", kernel=2, layers=3, speaker_dim=SPK, device="cpu") -> WaveNet:
    torch.manual_seed(0)
    cfg = WaveNetConfig(layers=layers, cycles=1, kernel_size=kernel, residual_channels=12,
                        gate_channels=20, skip_channels=10, upsample="repeat", output=output,
                        mixtures=3)
    return WaveNet(cfg, cond_channels=COND, speaker_dim=speaker_dim,
                   upsample_factor=FACTOR).eval().to(device)


def inputs(batch, frames, speaker_dim=SPK, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, COND, frames, generator=g)  # (B, C, Tc)
    speaker = torch.randn(batch, speaker_dim, generator=g) if speaker_dim else None  # (B, S)
    targets = torch.randint(0, 256, (batch, frames * FACTOR), generator=g)  # (B, T)
    return (cond.to(device), None if speaker is None else speaker.to(device),
            targets.to(device))


def graph_generate(net, cond, speaker, seed, temperature=1.0, prompt=None, capture=False):
    """What `WaveNet.generate(engine='cuda_graph')` runs, with the capture chosen here."""
    steps = cond.shape[-1] * net.upsample_factor
    c = net._cond_for(cond, steps).transpose(1, 2).contiguous()  # (B, T, C)
    gen = torch.Generator(device=cond.device).manual_seed(seed)
    noise = net._noise(cond.shape[0], gen, cond.device) if temperature > 0 else None
    return graph_wavenet.generate(net, c, speaker, steps, temperature, noise, prompt=prompt,
                                  capture=capture)


@pytest.mark.parametrize("output,kernel", [("softmax", 2), ("mol", 3)])
def test_static_step_logits_equal_eager(output, kernel):
    net = net_for(output, kernel)
    cond, speaker, targets = inputs(3, frames=50)  # T = 250 > receptive field (8 or 15)
    with torch.no_grad():
        eager = net(targets, cond, speaker)  # (B, O, T)
    got = graph_wavenet.teacher_forced_logits(net, targets, cond, speaker, capture=False)
    torch.testing.assert_close(got, eager, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("output,seed,prompted", [("softmax", 0, False), ("softmax", 1, True),
                                                  ("mol", 2, True)])
def test_static_step_samples_equal_eager_over_2000_steps(output, seed, prompted):
    net = net_for(output)
    cond, speaker, targets = inputs(2, frames=410)  # 2050 samples: across two noise chunks
    prompt = targets[:, :300] if prompted else None
    eager = net.generate(cond, speaker, engine="eager", prompt=prompt,
                         generator=torch.Generator().manual_seed(seed))
    got = graph_generate(net, cond, speaker, seed, prompt=prompt)
    assert got.shape == eager.shape == (2, 2050)
    assert torch.equal(got, eager)
    if prompted:
        assert torch.equal(got[:, :300], prompt)
    assert len(got[0, 300:].unique()) > 10  # a real draw, not a constant


def test_static_step_greedy_and_small_chunks(monkeypatch):
    """Greedy draws, and chunks of conditioning rows smaller than the noise chunk."""
    net = net_for("mol")
    cond, speaker, _ = inputs(2, frames=60)
    monkeypatch.setattr(graph_wavenet, "ROWS_BYTES", 2 * 64 * 3 * 20 * 4)  # 64-step chunks
    assert graph_wavenet.chunk_steps(2, 3 * 20, 1024) == 64
    greedy = graph_generate(net, cond, speaker, 0, temperature=0)
    assert torch.equal(greedy, net.generate(cond, speaker, temperature=0, engine="eager"))
    warm = graph_generate(net, cond, speaker, 4, temperature=0.7)
    assert torch.equal(warm, net.generate(cond, speaker, temperature=0.7, engine="eager",
                                          generator=torch.Generator().manual_seed(4)))


def test_speech_prior_static_step_equals_eager():
    """The speech prior's WaveNet (no local conditioning) runs the same step."""
    cfg = WaveNetConfig(layers=4, cycles=2, kernel_size=2, residual_channels=8, gate_channels=16,
                        skip_channels=8, quantization_channels=16, output="softmax")
    torch.manual_seed(0)
    prior = CausalPrior(cfg, n_classes=3).eval()
    codes = torch.randint(0, 16, (2, 120), generator=torch.Generator().manual_seed(0))
    speakers = torch.tensor([0, 2])
    nothing = torch.zeros(2, 0, 120)
    logits = graph_wavenet.teacher_forced_logits(prior.net, codes, nothing,
                                                 prior.speaker(speakers), capture=False)
    torch.testing.assert_close(logits, prior(codes, speakers), atol=1e-4, rtol=1e-4)
    eager = prior.sample(2, (120,), cond=speakers, engine="eager", prompt=codes[:, :10],
                         generator=torch.Generator().manual_seed(3))
    got = graph_generate(prior.net, nothing, prior.speaker(speakers), 3, prompt=codes[:, :10])
    assert torch.equal(got, eager)


def test_engine_choice_and_its_errors():
    from speechvq.cli.common import WAVENET_ENGINES  # --engine's choices, without torch

    assert set(WAVENET_ENGINES) == set(fast_wavenet.ENGINES) | set(fast_wavenet.ALIASES)
    assert fast_wavenet.resolve_engine("auto", torch.device("cuda")) == "cuda_graph"
    assert fast_wavenet.resolve_engine("cuda-graph", torch.device("cuda")) == "cuda_graph"
    net = net_for()
    cond, speaker, _ = inputs(1, frames=4)
    for engine in ("cuda_graph", "cuda-graph"):
        with pytest.raises(ModelError, match="'cuda_graph' needs a CUDA GPU, the model is on "
                                             "cpu; use engine 'auto'"):
            net.generate(cond, speaker, engine=engine)


# ------------------------------------------------------------------------------ CUDA only


@CUDA
@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_captured_graph_equals_uncaptured_and_eager(output):
    net = net_for(output, device="cuda")
    cond, speaker, targets = inputs(4, frames=410, device="cuda")
    prompt = targets[:, :100]
    captured = graph_generate(net, cond, speaker, 0, prompt=prompt, capture=True)
    assert torch.equal(captured, graph_generate(net, cond, speaker, 0, prompt=prompt))
    eager = net.generate(cond, speaker, engine="eager", prompt=prompt,
                         generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(captured, eager)  # same noise; logits differ by float rounding only
    auto = net.generate(cond, speaker, prompt=prompt,  # engine 'auto' is cuda_graph on CUDA
                        generator=torch.Generator(device="cuda").manual_seed(0))
    assert torch.equal(auto, captured)


@CUDA
def test_captured_graph_teacher_forced_logits_equal_net(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # net()'s convolutions
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    net = net_for("softmax", kernel=3, layers=5, device="cuda")
    cond, speaker, targets = inputs(8, frames=300, device="cuda")  # 1500 steps, several chunks
    with torch.no_grad():
        eager = net(targets, cond, speaker)
    got = graph_wavenet.teacher_forced_logits(net, targets, cond, speaker)  # captured on CUDA
    torch.testing.assert_close(got, eager, atol=1e-4, rtol=1e-4)


@CUDA
def test_speech_prior_samples_with_the_graph_on_cuda():
    cfg = WaveNetConfig(layers=4, cycles=2, kernel_size=2, residual_channels=8, gate_channels=16,
                        skip_channels=8, quantization_channels=16, output="softmax")
    torch.manual_seed(0)
    prior = CausalPrior(cfg, n_classes=3).eval().cuda()
    speakers = torch.tensor([0, 2], device="cuda")
    runs = {e: prior.sample(2, (300,), cond=speakers, engine=e,
                            generator=torch.Generator(device="cuda").manual_seed(1))
            for e in ("eager", "auto")}
    assert torch.equal(runs["auto"], runs["eager"])
