"""WaveNet decoder: incremental == parallel, causality, receptive field, sampling, loss, MoL."""

from __future__ import annotations

import math

import pytest
import torch

from speechvq.config.speech import WaveNetConfig
from speechvq.errors import ModelError
from speechvq.models.speech.mol import class_to_value, mol_nll, mol_sample
from speechvq.models.speech.wavenet import WaveNet

COND, SPK, FACTOR = 5, 3, 4

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest)


def make(layers=4, cycles=2, kernel=2, upsample="transposed", output="softmax", speaker_dim=SPK,
         seed=0) -> WaveNet:
    torch.manual_seed(seed)
    cfg = WaveNetConfig(layers=layers, cycles=cycles, kernel_size=kernel, residual_channels=8,
                        gate_channels=16, skip_channels=8, upsample=upsample, output=output,
                        mixtures=3)
    return WaveNet(cfg, cond_channels=COND, speaker_dim=speaker_dim, upsample_factor=FACTOR)


def inputs(batch, frames, seed=1, speaker_dim=SPK):
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, COND, frames, generator=g)  # (B, C, Tc)
    speaker = torch.randn(batch, speaker_dim, generator=g) if speaker_dim else None  # (B, S)
    targets = torch.randint(0, 256, (batch, frames * FACTOR), generator=g)  # (B, T)
    return cond, speaker, targets


def teacher_forced_steps(net, targets, cond, speaker):
    """Drive `step` with the known targets; returns (B, O, T) like forward."""
    c = net.upsample(cond)  # (B, C, T)
    state = net.init_state(targets.shape[0])
    prev = torch.full((targets.shape[0],), net.silence, dtype=torch.long)
    outs = []
    for t in range(targets.shape[1]):
        outs.append(net.step(prev, c[:, :, t], speaker, state))  # (B, O)
        prev = targets[:, t]
    return torch.stack(outs, dim=-1)


@pytest.mark.parametrize("output", ["softmax", "mol"])
@pytest.mark.parametrize("upsample", ["transposed", "repeat"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kernel", [2, 3])
@pytest.mark.parametrize("layers,cycles", [(4, 2), (5, 1), (3, 3)])
def test_incremental_equals_parallel(layers, cycles, kernel, batch, upsample, output):
    net = make(layers, cycles, kernel, upsample, output)
    cond, speaker, targets = inputs(batch, frames=20)  # T = 80 > receptive field (63 at most)
    assert targets.shape[1] > net.receptive_field  # every ring buffer wraps around
    with torch.no_grad():
        parallel = net(targets, cond, speaker)  # (B, O, T)
    incremental = teacher_forced_steps(net, targets, cond, speaker)
    assert parallel.shape == (batch, net.out_channels, targets.shape[1])
    torch.testing.assert_close(incremental, parallel, atol=1e-4, rtol=1e-4)


def test_incremental_equals_parallel_without_speaker():
    net = make(speaker_dim=0)
    cond, _, targets = inputs(2, frames=8, speaker_dim=0)
    with torch.no_grad():
        parallel = net(targets, cond, None)
    torch.testing.assert_close(teacher_forced_steps(net, targets, cond, None), parallel,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_causal(output):
    net = make(layers=6, cycles=2, kernel=3, output=output)
    cond, speaker, targets = inputs(2, frames=16)
    t0 = 30
    changed = targets.clone()
    changed[:, t0:] = (changed[:, t0:] + 1 + torch.arange(changed.shape[1] - t0)) % 256
    with torch.no_grad():
        a, b = net(targets, cond, speaker), net(changed, cond, speaker)
    # The output at t sees targets up to t - 1, so outputs up to t0 are untouched ...
    torch.testing.assert_close(a[..., :t0 + 1], b[..., :t0 + 1], atol=0, rtol=0)
    # ... and the next one does change (the comparison above could fail).
    assert (a[..., t0 + 1] - b[..., t0 + 1]).abs().max() > 1e-4


@pytest.mark.parametrize("layers,cycles,kernel,expected", [(6, 2, 2, 15), (4, 2, 3, 13),
                                                           (5, 1, 2, 32)])
def test_receptive_field_measured(layers, cycles, kernel, expected):
    net = make(layers, cycles, kernel, seed=3)
    assert net.receptive_field == expected
    cond, speaker, targets = inputs(1, frames=16)  # T = 64
    captured = {}

    def keep(module, args, out):
        out.retain_grad()
        captured["x"] = out  # (B, T, R) embedded inputs

    handle = net.embed.register_forward_hook(keep)
    try:
        out = net(targets, cond, speaker)  # (B, O, T)
    finally:
        handle.remove()
    t = targets.shape[1] - 1
    out[0, :, t].sum().backward()
    reached = captured["x"].grad[0].abs().sum(dim=-1) > 0  # (T,)
    seen = torch.nonzero(reached).flatten()
    assert seen.max().item() == t  # the input at t (= target t - 1), nothing later
    assert t - seen.min().item() + 1 == net.receptive_field
    assert reached[seen.min():].all()


def test_upsample_lengths_and_alignment():
    for mode in ("transposed", "repeat"):
        net = make(upsample=mode)
        cond = torch.randn(2, COND, 7)
        assert net.upsample(cond).shape == (2, COND, 7 * FACTOR)
    net = make(upsample="repeat")
    with torch.no_grad():  # identity centre tap: 'repeat' gives exactly repeat_interleave
        net.upsampler.weight.zero_()
        net.upsampler.bias.zero_()
        net.upsampler.weight[:, :, 1] = torch.eye(COND)
    cond = torch.randn(2, COND, 7)
    torch.testing.assert_close(net.upsample(cond), cond.repeat_interleave(FACTOR, dim=-1))
    net = make(upsample="transposed")  # code i reaches samples [i f - f/2, i f + 3f/2) only
    cond = torch.randn(1, COND, 7)
    bumped = cond.clone()
    bumped[..., 3] += 1.0
    with torch.no_grad():
        diff = (net.upsample(bumped) - net.upsample(cond)).abs().sum(dim=1)[0]  # (T,)
    touched = torch.nonzero(diff > 1e-6).flatten()
    assert touched.min().item() == 3 * FACTOR - FACTOR // 2
    assert touched.max().item() == 3 * FACTOR + 3 * FACTOR // 2 - 1


def test_short_conditioning_and_bad_speaker_raise():
    net = make()
    cond, speaker, targets = inputs(2, frames=4)
    with pytest.raises(ModelError, match="codes"):
        net(torch.cat([targets, targets], dim=1), cond, speaker)
    with pytest.raises(ModelError, match="speaker"):
        net(targets, cond, speaker[:, :2])
    with pytest.raises(ModelError, match="lengths"):
        net.generate(cond, speaker, torch.tensor([4 * FACTOR + 1, 1]))


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_generate_shapes_determinism_and_lengths(output):
    net = make(output=output)
    cond, speaker, _ = inputs(3, frames=6)
    full = 6 * FACTOR

    def gen(lengths=None, seed=0):
        return net.generate(cond, speaker, lengths, generator=torch.Generator().manual_seed(seed))

    a = gen()
    assert a.shape == (3, full) and a.dtype == torch.long
    assert 0 <= a.min() and a.max() < 256
    torch.testing.assert_close(gen(), a, atol=0, rtol=0)
    assert not torch.equal(gen(seed=1), a)
    short = gen(torch.tensor([full, full // 2, 0]))
    assert short.shape == (3, full)
    torch.testing.assert_close(short[0], a[0], atol=0, rtol=0)  # utterances do not interact
    torch.testing.assert_close(short[1, :full // 2], a[1, :full // 2], atol=0, rtol=0)
    assert (short[1, full // 2:] == net.silence).all() and (short[2] == net.silence).all()
    assert gen(torch.tensor([5, 3, 0])).shape == (3, 5)


@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_temperature_zero_is_greedy(output):
    net = make(output=output, kernel=3)
    cond, speaker, _ = inputs(2, frames=5)
    got = net.generate(cond, speaker, temperature=0.0)
    c = net.upsample(cond)
    state = net.init_state(2)
    prev = torch.full((2,), net.silence, dtype=torch.long)
    greedy = []
    for t in range(c.shape[-1]):
        logits = net.step(prev, c[:, :, t], speaker, state)  # (B, O)
        if output == "softmax":
            prev = logits.argmax(dim=-1)
        else:  # mean of the most probable component, rounded to its class
            m = net.cfg.mixtures
            mean = logits[:, m:2 * m].gather(1, logits[:, :m].argmax(1, keepdim=True))[:, 0]
            prev = torch.round((mean.clamp(-1, 1) + 1) * 255 / 2).long()
        greedy.append(prev)
    torch.testing.assert_close(got, torch.stack(greedy, dim=1), atol=0, rtol=0)


@pytest.mark.parametrize("output,lr,below", [("softmax", 1e-2, 0.5), ("mol", 5e-3, 4.0)])
def test_loss_drops_on_learnable_sequence(output, lr, below):
    net = make(output=output)
    cond, speaker, _ = inputs(2, frames=16)
    targets = torch.tensor([40, 200, 120]).repeat(2, 22)[:, :64]  # period 3: prev -> next
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(100):
        loss = net.loss(net(targets, cond, speaker), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[0] > 5.0  # about log(256) = 5.5 nats at the start (MoL: a little more)
    assert sum(losses[-10:]) / 10 < below  # MoL learns sharp peaks slowly (noisy, as known)


def test_loss_values_and_mask():
    net = make()
    targets = torch.randint(0, 256, (2, 10))
    assert net.loss(torch.zeros(2, 256, 10), targets).item() == pytest.approx(math.log(256))
    out = torch.randn(2, 256, 10)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, :4] = True
    mask[1, 7:] = True
    expected = torch.cat([torch.nn.functional.cross_entropy(out[0, :, :4].t(), targets[0, :4],
                                                            reduction="none"),
                          torch.nn.functional.cross_entropy(out[1, :, 7:].t(), targets[1, 7:],
                                                            reduction="none")]).mean()
    torch.testing.assert_close(net.loss(out, targets, mask), expected)


def test_mol_is_a_distribution_over_classes():
    g = torch.Generator().manual_seed(0)
    m = 4
    params = torch.cat([torch.randn(1, m, 1, generator=g), torch.rand(1, m, 1, generator=g) * 2 - 1,
                        torch.rand(1, m, 1, generator=g) * 3 - 3.5], dim=1)  # (1, 3M, 1)
    classes = torch.arange(256).view(256, 1)  # every class, one row each
    nll = mol_nll(params.expand(256, -1, -1), classes, 256)  # (256, 1)
    assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-3)
    # a single sharp component puts its samples in the bin of its mean
    sharp = torch.tensor([[0.0, class_to_value(torch.tensor(37), 256).item(), -7.0]])
    noise = torch.rand(50, 2, generator=g)
    picks = torch.stack([mol_sample(sharp, 256, 1.0, noise[i:i + 1]) for i in range(50)])
    assert (picks == 37).float().mean() > 0.9


def test_autocast_bf16_cpu_forward_and_float32_loss():
    net = make(output="mol")
    cond, speaker, targets = inputs(2, frames=8)
    ref = net.loss(net(targets, cond, speaker), targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(targets, cond, speaker)
        loss = net.loss(out, targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(ref.item(), rel=0.05)
    loss.backward()
    assert all(p.grad is not None for p in net.layers[0].parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("output", ["softmax", "mol"])
def test_cuda_incremental_generate_and_autocast(output, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # TF32 convs miss 1e-4
    net = make(layers=6, cycles=2, kernel=3, output=output).cuda()
    cond, speaker, targets = (x.cuda() for x in inputs(2, frames=12))
    with torch.no_grad():
        parallel = net(targets, cond, speaker)
    c = net.upsample(cond)
    state = net.init_state(2)
    prev = torch.full((2,), net.silence, dtype=torch.long, device="cuda")
    outs = []
    for t in range(targets.shape[1]):
        outs.append(net.step(prev, c[:, :, t], speaker, state))
        prev = targets[:, t]
    torch.testing.assert_close(torch.stack(outs, -1), parallel, atol=1e-4, rtol=1e-4)
    gen = net.generate(cond, speaker, generator=torch.Generator("cuda").manual_seed(0))
    again = net.generate(cond, speaker, generator=torch.Generator().manual_seed(0))  # CPU noise
    assert gen.device.type == "cuda" and gen.shape == targets.shape and again.is_cuda
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = net.loss(net(targets, cond, speaker), targets)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
