"""The speech prior (a WaveNet stack without local conditioning): causality, greedy sampling ==
teacher-forced argmax on every engine, prompts kept, seeded draws, speaker conditioning."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from speechvq.errors import ConfigError, ModelError
from speechvq.models.prior.causal import CausalPrior
from speechvq.models.speech import fast_wavenet

K = 11
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors (conftest)
ENGINES = ["eager"] + (["fused"] if fast_wavenet.available() else [])


def model_cfg(**over):
    cfg = dict(arch="wavenet", channels=8, layers=4, kernel_size=2, dilation_cycle=2,
               dropout=0.0, conditional=False)
    cfg.update(over)
    return SimpleNamespace(**cfg)


def prior_for(conditional=False, kernel=2, seed=0) -> CausalPrior:
    torch.manual_seed(seed)
    prior = CausalPrior.from_config(model_cfg(conditional=conditional, kernel_size=kernel),
                                    codebook_size=K, n_classes=3)
    # A few steps on a repeating random pattern: an untrained net's greedy draws repeat one
    # code; a trained one's run through many, with clear argmaxes.
    pattern = torch.randint(0, K, (7,), generator=torch.Generator().manual_seed(seed))
    codes = pattern.repeat(2, 6)  # (2, 42)
    cond = torch.tensor([0, 1]) if conditional else None
    opt = torch.optim.Adam(prior.parameters(), lr=3e-2)
    for _ in range(30):
        opt.zero_grad()
        prior.nll(prior(codes, cond), codes).backward()
        opt.step()
    return prior.eval()


@pytest.mark.parametrize("conditional", [False, True])
def test_causal(conditional):
    prior = prior_for(conditional, kernel=3)
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, K, (2, 30), generator=g)
    cond = torch.tensor([0, 2]) if conditional else None
    with torch.no_grad():
        base = prior(codes, cond)  # (B, K, T)
        assert base.shape == (2, K, 30)
        for t in (0, 7, 29):
            changed = codes.clone()
            changed[:, t:] = (changed[:, t:] + 1) % K
            out = prior(changed, cond)
            torch.testing.assert_close(out[:, :, :t + 1], base[:, :, :t + 1], atol=0, rtol=0)
            if t < 29:
                assert not torch.allclose(out[:, :, t + 1], base[:, :, t + 1])
        if conditional:
            assert not torch.allclose(prior(codes, torch.tensor([1, 1])), base)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("conditional", [False, True])
def test_greedy_sampling_equals_teacher_forced_argmax(engine, conditional):
    prior = prior_for(conditional)
    cond = torch.tensor([0, 1, 2]) if conditional else None
    steps = 3 * prior.receptive_field + 5  # every ring buffer wraps around
    codes = prior.sample(3, (steps,), cond=cond, temperature=0, engine=engine)
    assert codes.shape == (3, steps) and codes.dtype == torch.long
    with torch.no_grad():
        assert torch.equal(prior(codes, cond).argmax(1), codes)
    assert len(set(codes.flatten().tolist())) > 1


@pytest.mark.parametrize("engine", ENGINES)
def test_prompt_kept_and_continued_greedily(engine):
    prior = prior_for()
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(0, K, (2, 9), generator=g)
    codes = prior.sample(2, (25,), prompt=prompt, temperature=0, engine=engine)
    assert torch.equal(codes[:, :9], prompt)
    with torch.no_grad():
        assert torch.equal(prior(codes).argmax(1)[:, 9:], codes[:, 9:])


def test_seeded_sampling_same_on_every_engine():
    prior = prior_for()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    draws = [prior.sample(2, (40,), prompt=prompt, temperature=5.0, engine=e,
                          generator=torch.Generator().manual_seed(5)) for e in ENGINES]
    for d in draws[1:]:
        assert torch.equal(d, draws[0])
    again = prior.sample(2, (40,), prompt=prompt, temperature=5.0,
                         generator=torch.Generator().manual_seed(5),
                         engine="eager")
    other = prior.sample(2, (40,), prompt=prompt, temperature=5.0,
                         generator=torch.Generator().manual_seed(6),
                         engine="eager")
    assert torch.equal(again, draws[0]) and not torch.equal(other, draws[0])
    assert ((draws[0] >= 0) & (draws[0] < K)).all()


def test_training_step_and_bad_input():
    prior = CausalPrior.from_config(model_cfg(dropout=0.2), codebook_size=K, n_classes=0)
    codes = torch.randint(0, K, (2, 12))
    loss = prior.nll(prior(codes), codes)
    loss.backward()
    assert loss.item() > 0 and prior.net.layers[0].conv.weight.grad is not None
    assert not any(name.startswith("net.upsampler") or ".cond." in name
                   for name in prior.state_dict())
    with pytest.raises(ModelError, match="lie in"):
        prior(torch.full((1, 4), K))
    with pytest.raises(ModelError, match="prompt"):
        prior.sample(1, (3,), prompt=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="dilation_cycle"):
        CausalPrior.from_config(model_cfg(layers=5), codebook_size=K, n_classes=0)
    conditional = CausalPrior.from_config(model_cfg(conditional=True), codebook_size=K,
                                          n_classes=2)
    with pytest.raises(ModelError, match="speaker"):
        conditional(codes)


def test_dropout_drops_a_share_p_in_training_keeps_the_mean_and_is_off_in_eval():
    from speechvq.models.speech.wavenet import ResidualLayer

    torch.manual_seed(0)
    layer = ResidualLayer(4, 8, 4, kernel_size=2, dilation=1, cond_channels=0, speaker_dim=0,
                          dropout=0.25)
    layer.skip.weight.data = torch.eye(4).unsqueeze(-1)  # skip = the gated units z themselves
    layer.skip.bias.data.zero_()
    x = torch.randn(1, 4, 2000)
    with torch.no_grad():
        layer.eval()
        z = layer(x, None, None)[1]
        assert torch.equal(layer(x, None, None)[1], z)  # no dropout in eval
        layer.train()
        dropped = layer(x, None, None)[1]
    kept = dropped != 0
    assert abs(1 - kept.float().mean().item() - 0.25) < 0.02  # a share p is dropped
    assert torch.allclose(dropped[kept], z[kept] / 0.75)  # the rest scaled by 1 / (1 - p)


def test_start_symbol_is_the_input_before_an_utterance():
    prior = prior_for()
    assert prior.start == K and prior.net.embed.num_embeddings == K + 1  # K outputs, K + 1 inputs
    codes = torch.randint(0, K, (2, 20), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = prior(codes)
        assert base.shape == (2, K, 20)
        torch.testing.assert_close(prior(codes, first=torch.full((2,), K)), base, atol=0, rtol=0)
        inside = prior(codes, first=codes[:, 0])  # a window cut from inside: the code before it
    assert not torch.allclose(inside[:, :, 0], base[:, :, 0])
    with pytest.raises(ModelError, match="first"):
        prior(codes, first=torch.full((2,), K + 1))
    old = CausalPrior.from_config(model_cfg(start_symbol=False), codebook_size=K, n_classes=0)
    assert old.start == K // 2 and old.net.embed.num_embeddings == K
    with pytest.raises(ModelError, match="first"):
        old(codes, first=torch.full((2,), K))


@pytest.mark.parametrize("engine", ENGINES)
def test_greedy_sampling_without_start_symbol(engine):
    torch.manual_seed(0)
    prior = CausalPrior.from_config(model_cfg(start_symbol=False), codebook_size=K,
                                    n_classes=0).eval()
    codes = prior.sample(2, (20,), temperature=0, engine=engine)
    with torch.no_grad():
        assert torch.equal(prior(codes).argmax(1), codes)


def test_priors_saved_before_the_start_symbol_still_load(tmp_path):
    from speechvq.config import load_config
    from speechvq.config.engine import config_to_dict
    from speechvq.tasks.prior import load_prior

    cfg = load_config(overrides=["task=prior", "model.arch=wavenet", "model.channels=8",
                                 "model.layers=2", "model.dilation_cycle=2",
                                 "model.kernel_size=2", "model.conditional=false"])
    values = config_to_dict(cfg)
    del values["model"]["start_symbol"]  # a config saved before the key existed
    torch.manual_seed(0)
    old = CausalPrior.from_config(SimpleNamespace(**{**values["model"], "start_symbol": False}),
                                  codebook_size=K, n_classes=0)
    info = {"codebook_size": K, "n_classes": 0}
    state = {"config": values, "prior": info, "model": old.state_dict()}
    loaded = load_prior(state, tmp_path / "old.pt")
    assert not loaded.start_symbol and loaded.start == K // 2
    codes = torch.randint(0, K, (1, 9))
    with torch.no_grad():
        torch.testing.assert_close(loaded(codes), old.eval()(codes), atol=0, rtol=0)
