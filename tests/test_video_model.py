"""The video VQ-VAE (the image encoder/decoder made 3-D), its config checks, the video task's
setup, and the video prior's causality and sampling in both of its forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechvq.config import load_config
from speechvq.data.video.dump import write_video_dump
from speechvq.errors import ConfigError, DataError, ModelError
from speechvq.models.prior.video import VideoPrior
from speechvq.models.quantizer import VectorQuantizer
from speechvq.models.video import VideoVQVAE
from speechvq.registry import get_task

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["task=video", "data.image_size=16", "data.frames=8", "data.window=4",
        "model.channels=8", "model.residual_channels=4", "model.residual_blocks=1",
        "model.quantizer.codebook_size=16", "model.quantizer.dim=4"]


@pytest.mark.parametrize("time_downsample, latent", [(0, (8, 4, 4)), (1, (4, 4, 4)),
                                                      (2, (2, 4, 4))])
def test_strides_in_time_and_space_and_decode_inverts_encode(time_downsample, latent):
    torch.manual_seed(0)
    vq = VideoVQVAE(1, 8, 1, 4, 2, time_downsample, VectorQuantizer(4, 16))
    clips = torch.randint(0, 256, (2, 1, 8, 16, 16), dtype=torch.uint8)
    out = vq(clips)
    assert out.codes.shape == (2, *latent) and out.loss.requires_grad
    out.loss.backward()
    vq.eval()
    frames = vq.decode(vq.encode(clips))
    assert frames.shape == clips.shape and frames.dtype == torch.uint8
    assert torch.equal(frames, vq.reconstruct(clips))
    with pytest.raises(ModelError, match="T a multiple of"):
        vq.encode(clips[:, :, :7 if time_downsample else 8, :15])


def test_config_checks():
    cfg = load_config(None, TINY)
    assert cfg.model.latent_grid(8, 16) == (4, 4, 4) and cfg.data.train_frames == 4
    for bad, match in ((["data.window=3"], "data.window = 3 is not a multiple"),
                       (["model.time_downsample=3"], "more than model.downsample"),
                       (["data.window=12"], "longer than the clips")):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [*TINY, *bad])


def test_setup_trains_on_windows_and_refuses_a_dump_of_another_shape(tmp_path):
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (6, 8, 16, 16, 1), dtype=np.uint8)
    write_video_dump(tmp_path / "train", clips, [f"c{i}" for i in range(6)], {})
    cfg = load_config(None, [*TINY, "train.batch_size=2"])
    run = get_task("video").setup(cfg, tmp_path / "train", valid=tmp_path / "train")
    batch = run.batches[0]
    assert batch["clip"].shape == (2, 1, 4, 16, 16)
    loss, metrics = run.step_fn(run.model, batch)
    assert loss.requires_grad and {"recon_loss", "mse", "perplexity"} <= set(metrics)
    assert run.valid_batches[0]["clip"].shape == (2, 1, 8, 16, 16)  # whole clips
    assert float(run.model.pixel_variance) == pytest.approx((clips / 255.0).var(), rel=1e-6)
    with pytest.raises(DataError, match="data.frames=8 data.image_size=16"):
        get_task("video").setup(load_config(None, [*TINY, "data.frames=4"]), tmp_path / "train")


@pytest.mark.parametrize("within_frame", [True, False])
def test_video_prior_is_causal_in_raster_order_and_samples_what_it_scores(within_frame):
    torch.manual_seed(0)
    prior = VideoPrior(7, channels=8, layers=2, time_layers=2, within_frame=within_frame).eval()
    t, h, w = 3, 3, 4
    codes = torch.randint(0, 7, (1, t, h, w))
    base = prior(codes)  # (1, K, T, H, W)
    assert base.shape == (1, 7, t, h, w)
    n = t * h * w
    for q in range(n):  # change the code at q: only positions after q may move
        changed = codes.clone().view(-1)
        changed[q] = (changed[q] + 1) % 7
        moved = (prior(changed.view(1, t, h, w)) - base).abs().amax(1).view(-1) > 1e-6
        assert not moved[:q + 1].any(), q
        frame_end = (q // (h * w) + 1) * h * w
        if within_frame and q + 1 < frame_end and (q + 1) % w:
            assert moved[q + 1], q  # the next code in the row sees it
        if frame_end < n:
            assert moved[frame_end:].any(), q  # later frames see it
    prompt = codes.view(1, -1)[:, :14]  # a frame and a part of the next
    greedy = prior.sample(1, (t, h, w), prompt=prompt, temperature=0)
    assert torch.equal(greedy.view(1, -1)[:, :14], prompt)
    assert torch.equal(prior(greedy).argmax(1).view(1, -1)[:, 14:], greedy.view(1, -1)[:, 14:])
    draws = [prior.sample(2, (t, h, w), generator=torch.Generator().manual_seed(3))
             for _ in range(2)]
    assert torch.equal(draws[0], draws[1])


def test_video_prior_from_the_prior_config_and_its_errors():
    cfg = load_config(None, ["task=prior", "model.arch=video", "model.channels=8",
                             "model.layers=2", "model.time_layers=1"])
    from speechvq.models.prior import build_prior
    prior = build_prior(cfg.model, codebook_size=5, n_classes=0)
    assert isinstance(prior, VideoPrior) and len(prior.layers) == 2
    with pytest.raises(ModelError, match=r"\(B, T, H, W\) int64"):
        prior(torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ModelError, match="must lie in"):
        prior(torch.full((1, 2, 2, 2), 5))
    with pytest.raises(ModelError, match="prompt must be"):
        prior.sample(2, (2, 2, 2), prompt=torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ConfigError, match="odd kernel"):
        load_config(None, ["task=prior", "model.arch=video", "model.kernel_size=2"])
