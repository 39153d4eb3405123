"""The image VQ-VAE (speechvq.models.image), its config (speechvq.config.image) and its task
(speechvq.tasks.image): shapes, both decoders, the step function, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechvq.config import load_config
from speechvq.data.images.dump import write_dump
from speechvq.errors import ConfigError, DataError, ModelError
from speechvq.models.image import TRAINING, ImageVQVAE
from speechvq.registry import get_task
from speechvq.tasks.image import image_step
from speechvq.tasks.pixels import pixel_variance

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["task=image", "model.channels=8", "model.residual_channels=4",
        "model.quantizer.codebook_size=16", "model.quantizer.dim=4"]


def _images(b: int = 2, c: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("output", ["mse", "categorical"])
@pytest.mark.parametrize("size, channels, downsample, latent", [(32, 3, 2, 8), (28, 1, 2, 7),
                                                                (32, 3, 3, 4)])
def test_shapes_losses_and_decode_of_both_decoders(output, size, channels, downsample, latent):
    cfg = load_config(None, [*TINY, f"model.output={output}", f"data.image_size={size}",
                             f"data.channels={channels}", f"model.downsample={downsample}"])
    torch.manual_seed(0)
    vq = ImageVQVAE.from_config(cfg)
    images = _images(2, channels, size)
    out = vq(images)
    assert out.codes.shape == (2, latent, latent) and out.loss.shape == ()
    out.loss.backward()
    assert all(p.grad is not None for p in vq.encoder.parameters())  # straight-through
    vq.eval()
    codes = vq.encode(images)
    decoded = vq.decode(codes)
    assert decoded.shape == images.shape and decoded.dtype == torch.uint8
    assert torch.equal(decoded, vq.reconstruct(images))
    if output == "categorical":
        bits = vq.nll_bits(images)  # (B,)
        assert bits.shape == (2,) and torch.isfinite(bits).all()
        # an untrained softmax over 256 values is close to uniform: about 8 bits per subpixel
        assert 6 < float(bits.mean()) / images[0].numel() < 10
        with torch.no_grad():
            recon_loss = float(vq(images).recon_loss)
        assert math.isclose(recon_loss / math.log(2),
                            float(bits.mean()) / images[0].numel(), rel_tol=1e-4)
    else:
        with pytest.raises(ModelError, match="bits/dim needs the categorical decoder"):
            vq.nll_bits(images)


def test_mse_is_in_uint8_units_and_the_loss_is_scaled_by_the_pixel_variance():
    vq = ImageVQVAE.from_config(load_config(None, TINY)).eval()  # eval: the codebook stays
    images = _images()
    out = vq(images)
    vq.set_pixel_variance_(0.25)
    assert torch.allclose(vq(images).recon_loss, out.recon_loss * 4)
    recon = vq.reconstruct(images).float()
    assert math.isclose(float(((recon - images.float()) ** 2).mean()), float(vq(images).mse),
                        rel_tol=1e-3)


def test_wrong_images_are_refused():
    vq = ImageVQVAE.from_config(load_config(None, TINY))
    with pytest.raises(ModelError, match=r"\(B, 3, H, W\) uint8"):
        vq(_images().float())
    with pytest.raises(ModelError, match="multiples of 4"):
        vq(_images(size=30))


def test_config_checks():
    with pytest.raises(ConfigError, match="not a multiple of 2\\^model.downsample"):
        load_config(None, [*TINY, "data.image_size=30"])
    with pytest.raises(ConfigError, match="train.freeze.*encoder, quantizer, decoder"):
        load_config(None, [*TINY, "train.freeze=[wavenet]"])
    with pytest.raises(ConfigError, match="data.channels"):
        load_config(None, [*TINY, "data.channels=2"])


def test_step_function_logs_the_image_metrics_and_bits_per_dim_when_categorical():
    for output, extra in (("mse", set()), ("categorical", {"bits_per_dim_given_codes"})):
        vq = ImageVQVAE.from_config(load_config(None, [*TINY, f"model.output={output}"]))
        loss, metrics = image_step(vq, {"image": _images(), "label": torch.zeros(2)})
        assert set(metrics) == {"recon_loss", "vq_loss", "mse", "perplexity", "codes_used"} | extra
        assert set(metrics) <= {m.name for m in TRAINING}
        assert all(not v.requires_grad for v in metrics.values()) and loss.requires_grad


def test_setup_checks_the_dump_and_measures_the_pixel_variance(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    write_dump(tmp_path / "train", images, np.arange(20) % 2, ["a", "b"], {})
    write_dump(tmp_path / "grey", images[:, :, :, :1], np.zeros(20), ["a"], {})
    cfg = load_config(None, [*TINY, "train.batch_size=4"])
    run = get_task("image").setup(cfg, tmp_path / "train", valid=tmp_path / "train")
    assert math.isclose(float(run.model.pixel_variance), (images / 255.0).var(), rel_tol=1e-6)
    assert math.isclose(pixel_variance(run.batches.dump.images, 0), (images / 255.0).var(),
                        rel_tol=1e-9)
    assert run.exp_files == {"classes.txt": "a\nb\n"} and run.extra_state == {"classes": ["a", "b"]}
    assert len(run.valid_batches) == 5 and run.batches[0]["image"].shape == (4, 3, 32, 32)
    with pytest.raises(DataError, match=r"holds 32x32x1 images.*data.channels=1"):
        get_task("image").setup(cfg, tmp_path / "grey")


def test_frozen_parts_get_no_gradient_and_a_frozen_codebook_stays(tmp_path):
    cfg = load_config(None, [*TINY, "train.freeze=[encoder,quantizer]"])
    vq = ImageVQVAE.from_config(cfg)
    vq.freeze_(cfg.train.freeze)
    vq.train()
    before = vq.quantizer.codebook.clone()
    vq(_images()).loss.backward()
    assert not vq.quantizer.training and torch.equal(vq.quantizer.codebook, before)
    assert all(p.grad is None for p in vq.encoder.parameters())
    assert all(p.grad is not None for p in vq.decoder.parameters())
    other = ImageVQVAE.from_config(cfg)
    untouched = other.init_from_({"model": vq.state_dict()}, "a test")
    assert untouched == [] and torch.equal(other.quantizer.codebook, vq.quantizer.codebook)
