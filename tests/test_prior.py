"""The prior task: the gated PixelCNN's causality and sampling, code dumps, the n-gram baselines'
arithmetic, and the image chain end to end through the CLI (encode --codes-out, train with
task: prior, evaluate prior, sample, report)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from speechvq import cli
from speechvq.data.code_dump import CodeDump, CodeItem, held_out_split, write_code_dump
from speechvq.errors import DataError, ModelError
from speechvq.evaluation.prior import NgramBaselines
from speechvq.models.prior import codebook_rows, prior_class
from speechvq.models.prior.pixelcnn import PixelCNNPrior

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("n_classes", [0, 3])
def test_pixelcnn_is_causal_in_raster_order(n_classes):
    torch.manual_seed(0)
    model = PixelCNNPrior(7, channels=8, layers=4, kernel_size=3, n_classes=n_classes).eval()
    h = w = 4
    codes = torch.randint(0, 7, (1, h, w))
    cond = torch.tensor([1]) if n_classes else None
    base = model(codes, cond)  # (1, K, H, W)
    for q in range(h * w):  # change the code at q: exactly the positions after q move
        changed = codes.clone().view(-1)
        changed[q] = (changed[q] + 1) % 7
        moved = (model(changed.view(1, h, w), cond) - base).abs().amax(1).view(-1) > 1e-6
        assert torch.equal(moved, torch.arange(h * w) > q), q
    if n_classes:
        assert not torch.allclose(model(codes, torch.tensor([2])), base)


def test_pixelcnn_sampling_matches_the_parallel_forward_and_keeps_the_prompt():
    torch.manual_seed(1)
    model = PixelCNNPrior(9, channels=8, layers=2, kernel_size=3, n_classes=2).eval()
    cond = torch.tensor([0, 1, 1])
    greedy = model.sample(3, (9, 3), cond=cond, temperature=0)  # taller than the row context
    assert torch.equal(model(greedy, cond).argmax(1), greedy)
    prompt = greedy.view(3, -1)[:, :5]
    draws = [model.sample(3, (9, 3), cond=cond, prompt=prompt,
                          generator=torch.Generator().manual_seed(4)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and torch.equal(draws[0].view(3, -1)[:, :5], prompt)
    with pytest.raises(ModelError, match="class-conditional"):
        model(greedy)


@pytest.mark.parametrize("class_dropout", [0.0, 0.5])
def test_guided_sampling_draws_from_the_contrast_of_the_class_and_no_class(class_dropout):
    torch.manual_seed(2)
    model = PixelCNNPrior(9, channels=8, layers=2, kernel_size=3, n_classes=3,
                          class_dropout=class_dropout).eval()
    for layer in model.layers:  # classes that matter, so guidance changes the greedy codes
        layer.cond.weight.data.mul_(4)
    # the contrast: the learnt "no class" (index 3) with class dropout, else the mean class
    none = 3 if class_dropout else -1
    assert model.no_class == none
    cond, w = torch.tensor([0, 2]), 2.5
    guided = model.sample(2, (5, 3), cond=cond, temperature=0, guidance=w)
    with torch.no_grad():  # every greedy code is the argmax of (1 + w) l_c - w l_none
        contrast = (1 + w) * model(guided, cond) - w * model(guided, torch.full_like(cond, none))
    assert torch.equal(contrast.argmax(1), guided)
    assert not torch.equal(guided, model.sample(2, (5, 3), cond=cond, temperature=0))
    if class_dropout:  # in training, about half the classes become "no class"
        model.train()
        codes = torch.zeros(400, 2, 2, dtype=torch.long)
        with torch.no_grad():
            emb, biases = model._inputs(codes, torch.zeros(400, dtype=torch.long))
        dropped = (biases[0][0] - model.layers[0].cond_bias(torch.tensor([3]))[0]).abs()
        share = (dropped.flatten(1).amax(1) == 0).float().mean().item()
        assert 0.4 < share < 0.6
    with pytest.raises(ModelError, match="class-conditional"):
        PixelCNNPrior(9, channels=8, layers=2).sample(1, (2, 2), guidance=1.0)


def test_codebook_rows_keep_the_codewords_geometry():
    gen = torch.Generator().manual_seed(0)
    codebook = torch.randn(30, 6, generator=gen) * torch.tensor([8.0, 4, 2, 1, 0.5, 0.1]) + 3
    wide = codebook_rows(codebook, 9)  # zero-padded
    assert wide.shape == (30, 9) and (wide[:, 6:] == 0).all()
    assert wide.var(0).mean().item() == pytest.approx(1.0, rel=1e-4)
    ratio = torch.pdist(wide) / torch.pdist(codebook)  # one scale: distances kept in proportion
    assert ratio.std() / ratio.mean() < 1e-5
    narrow = codebook_rows(codebook, 2)  # the two principal components, mostly dims 0 and 1
    assert narrow.shape == (30, 2)
    assert abs(torch.corrcoef(torch.stack([narrow[:, 0], codebook[:, 0]]))[0, 1]) > 0.95
    few = codebook_rows(codebook[:4], 5)  # 4 codes span 3 directions: the rest padded
    assert few.shape == (4, 5) and (few[:, 4:] == 0).all()


def test_condition_parameters_are_the_class_or_speaker_embeddings_of_every_arch():
    from types import SimpleNamespace

    from speechvq.models.prior import condition_parameter_names
    from speechvq.models.prior.causal import CausalPrior
    from speechvq.models.prior.video import VideoPrior

    wavenet = SimpleNamespace(channels=8, layers=2, kernel_size=2, dilation_cycle=2, dropout=0.0,
                              start_symbol=True, conditional=True)
    assert condition_parameter_names(CausalPrior.from_config(
        wavenet, codebook_size=16, n_classes=3)) == ["speaker.weight"]
    assert condition_parameter_names(VideoPrior(7, channels=8, layers=2, time_layers=1,
                                                n_classes=3)) == ["class_embed.weight"]
    assert condition_parameter_names(PixelCNNPrior(16, 8, 2, n_classes=3)) == [
        "layers.0.cond.weight", "layers.1.cond.weight"]
    assert condition_parameter_names(PixelCNNPrior(16, 8, 2)) == []  # unconditional


def test_missing_prior_module_is_a_clear_error(monkeypatch):
    from speechvq.models import prior

    monkeypatch.setitem(prior.ARCHS, "video", "speechvq.models.prior.no_such.VideoPrior")
    with pytest.raises(ModelError, match="does not have"):
        prior_class("video")
    assert prior_class("pixelcnn") is PixelCNNPrior


def test_code_dump_round_trip_checksums_and_checkpoint(tmp_path):
    ckpt = tmp_path / "vq.pt"
    ckpt.write_bytes(b"weights")
    items = [CodeItem("b", np.array([3, 4, 5]), "s2"), CodeItem("a", np.array([1, 2]), "s1")]
    dump = write_code_dump(tmp_path / "codes", items, modality="speech", codebook_size=8,
                           conditions=["s1", "s2"], checkpoint=ckpt, source="data",
                           frame_rate_hz=50)
    assert dump.ids == ["a", "b"] and dump.codes.dtype == np.uint16
    assert dump.item(1).tolist() == [3, 4, 5] and dump.condition_ids.tolist() == [0, 1]
    assert dump.meta["vqvae"]["path"] == "../vq.pt" and dump.check_checkpoint() == ckpt
    assert dump.verify() and not (tmp_path / "codes.tmp").exists()
    assert cli.main(["validate", str(tmp_path / "codes")]) == 0
    ckpt.write_bytes(b"other weights")
    with pytest.raises(DataError, match="changed since"):
        dump.check_checkpoint()
    (tmp_path / "codes" / "conditions.txt").write_text("s1\ns2\ns3\n")
    assert cli.main(["validate", str(tmp_path / "codes")]) == 2  # its checksum differs
    (tmp_path / "codes" / "index.tsv").write_text("id\toffset\tshape\tcondition\na\t0\t2\ts1\n")
    with pytest.raises(DataError, match="truncated"):
        CodeDump.open(tmp_path / "codes")
    train, held = held_out_split(20, 0.1, 7)
    assert len(held) == 2 and sorted([*train, *held]) == list(range(20))
    assert np.array_equal(held, held_out_split(20, 0.1, 7)[1])


def test_ngram_baselines_arithmetic():
    train = [np.array([0, 1, 0, 1]), np.array([1, 0])]
    ngram = NgramBaselines(train, 3)
    np.testing.assert_allclose(ngram.unigram, [4 / 9, 4 / 9, 1 / 9])  # add-one smoothed
    ngram.lam = 0.5
    uni, bi = ngram.bits(np.array([0, 1, 2]))
    assert uni == pytest.approx(-math.log2(4 / 9 * 4 / 9 * 1 / 9))
    # first code: unigram; 0 -> 1 seen 2 of 2 times; 1 -> 2 never seen after 1
    want = 4 / 9 * (0.5 * 1 + 0.5 * 4 / 9) * (0.5 * 0 + 0.5 * 1 / 9)
    assert bi == pytest.approx(-math.log2(want))
    assert ngram.tune_([np.array([0, 1, 0, 1, 0])]) == pytest.approx(0.99)


TINY_VQ = ["task=image", "model.channels=8", "model.residual_channels=4",
           "model.quantizer.codebook_size=16", "model.quantizer.dim=4", "train.batch_size=8",
           "train.max_steps=2", "train.checkpoint_every=2", "train.log_every=2"]
TINY_PRIOR = ["task=prior", "model.channels=8", "model.layers=2", "train.batch_size=8",
              "train.max_steps=4", "train.checkpoint_every=4", "train.log_every=2",
              "train.valid_every=2", "data.held_out=0.25"]
# what egs/images/conf/prior.yaml sets beyond the defaults: the codewords' start, a learnt
# "no class" for guidance, the class embeddings at a multiple of the lr, bf16 autocast on CPU
IMAGE_PRIOR = ["model.embed_init=codebook", "model.class_dropout=0.5",
               "model.condition_lr_scale=30", "train.amp=bf16"]


def test_image_prior_end_to_end(tmp_path, capsys):
    from speechvq.data.images.builtin import render_images
    from speechvq.data.images.dump import write_dump

    for k, (split, n) in enumerate((("train", 40), ("test", 10))):
        images, labels = render_images(n, 0, k)
        write_dump(tmp_path / split, images, labels, [str(d) for d in range(10)], {})
    vq, prior = tmp_path / "vq", tmp_path / "prior"
    assert cli.main(["train", "--data", str(tmp_path / "train"), "--exp", str(vq),
                     "--no-progress", *TINY_VQ]) == 0
    for split in ("train", "test"):
        assert cli.main(["encode", "--model", str(vq), "--data", str(tmp_path / split),
                         "--codes-out", str(tmp_path / "codes" / split), "--no-progress"]) == 0
    codes = CodeDump.open(tmp_path / "codes" / "train")
    assert codes.grid == (8, 8) and len(codes) == 40 and codes.modality == "image"
    assert cli.main(["train", "--data", str(tmp_path / "codes" / "train"), "--exp", str(prior),
                     "--no-progress", *TINY_PRIOR, *IMAGE_PRIOR]) == 0
    assert (prior / "checkpoints" / "best.pt").is_file()
    weights = torch.load(prior / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert weights["layers.0.cond.weight"].shape[0] == 11  # ten classes and the "no class"
    from speechvq.config import load_config
    from speechvq.tasks.prior import setup_prior

    cfg = load_config(None, [*TINY_PRIOR, *IMAGE_PRIOR])
    run = setup_prior(cfg, tmp_path / "codes" / "train")
    started = run.model
    assert run.lr_scales == {f"layers.{i}.cond.weight": 30.0 for i in range(2)}
    codewords = torch.load(codes.checkpoint, weights_only=True)["model"]["quantizer.codebook"]
    assert torch.allclose(started.code_embedding.weight, codebook_rows(codewords, 8))
    capsys.readouterr()
    assert cli.main(["evaluate", "prior", "--model", str(prior), "--data",
                     str(tmp_path / "codes" / "test"), "--exp", str(vq),
                     "--samples-per-class", "2", "--guidance", "1", "--no-progress"]) == 0
    assert "bigram" in capsys.readouterr().out
    result = json.loads((vq / "eval" / "prior_test.json").read_text())["prior"]
    assert result["test"]["uniform"]["bits_per_code"] == pytest.approx(4.0)
    assert {"prior", "unigram", "bigram"} <= set(result["test"])
    assert 0 <= result["test"]["class_information"]["prior_classifier_accuracy"] <= 1
    assert {"class_match", "chance"} <= set(result["samples"]) and result["samples"]["chance"] == 0.1
    assert result["samples"]["guidance"] == 1.0
    assert {"real_test_accuracy", "reconstruction_accuracy"} <= set(result["classifier"])
    assert result["classifier"]["trained_now"]
    assert cli.main(["evaluate", "prior", "--model", str(prior), "--data",
                     str(tmp_path / "codes" / "test"), "--exp", str(vq), "--name", "seed1",
                     "--seed", "1", "--samples-per-class", "1", "--no-progress"]) == 0
    again = json.loads((vq / "eval" / "prior_seed1.json").read_text())["prior"]["classifier"]
    assert not again["trained_now"]  # another sampling seed, the same classifier
    assert again["real_test_accuracy"] == result["classifier"]["real_test_accuracy"]
    out = tmp_path / "samples"
    assert cli.main(["sample", "--model", str(prior), "-n", "3", "--class", "4", "-o", str(out),
                     "--prompt", str(tmp_path / "codes" / "test"), "--prompt-length", "10",
                     "--guidance", "2"]) == 0
    sampled = CodeDump.open(out / "codes")
    test = CodeDump.open(tmp_path / "codes" / "test")
    assert sampled.item(1).reshape(-1)[:10].tolist() == test.item(1).reshape(-1)[:10].tolist()
    assert {f"sample_00{i}.png" for i in range(3)} | {"grid.png"} <= \
        {p.name for p in out.iterdir()}
    assert cli.main(["sample", "--model", str(prior), "-n", "1", "--speaker", "x",
                     "-o", str(tmp_path / "bad")]) == 2
    assert cli.main(["sample", "--model", str(prior), "-n", "1", "--engine", "eager",
                     "-o", str(tmp_path / "bad")]) == 2  # only a speech prior has engines
    assert "only a speech (wavenet) prior has sampling engines" in capsys.readouterr().err
    assert cli.main(["report", "--exp", str(vq)]) == 0
    report = json.loads((vq / "report" / "report.json").read_text())
    assert report["prior"]["test"]["bigram"]["bits_per_code"] == \
        result["test"]["bigram"]["bits_per_code"]
    assert "## Prior: test" in (vq / "report" / "report.md").read_text()
    assert cli.main(["report", "--exp", str(prior)]) == 0


def test_class_information_of_a_prior_that_knows_its_class():
    """A prior whose every code is its class (logits +4 there) saves bits for the true class
    and classifies perfectly; one that ignores the class saves none and sits at the first."""
    from speechvq.evaluation.prior import class_information

    class Fixed(torch.nn.Module):
        def __init__(self, uses_class):
            super().__init__()
            self.uses_class, self.prior_info = uses_class, {"n_classes": 4}

        def forward(self, codes, cond):
            logits = torch.zeros(codes.shape[0], 4, *codes.shape[1:])
            if self.uses_class:
                logits[torch.arange(len(cond)), cond] = 4.0
            return logits

    class Dump:
        def __init__(self, items):
            self.items = items
            self.lengths = np.array([x.size for x in items])
            self.shapes = [x.shape for x in items]

        def __len__(self):
            return len(self.items)

        def item(self, i):
            return self.items[i]

    labels = np.arange(12) % 4
    dump = Dump([np.full((2, 3), c) for c in labels])
    knows = class_information(Fixed(True), dump, labels, 8, "cpu", False)
    assert knows["prior_classifier_accuracy"] == 1.0 and knows["chance"] == 0.25
    # 6 codes each: log2 of (e^4 + 3) / 1 over the wrong class's 1 / (e^4 + 3) ... per code
    per_code = np.log2(np.exp(4) + 3) - np.log2((np.exp(4) + 3) / np.exp(4))
    assert knows["bits_saved_per_item"] == pytest.approx(6 * per_code)
    assert knows["ceiling_bits_per_item"] == pytest.approx(2.0)
    # posterior of the true class: e^(6*4) / (e^(6*4) + 3) (the 6 codes' logits, per class)
    posterior = np.exp(24) / (np.exp(24) + 3)
    assert knows["information_bits_per_item"] == pytest.approx(2.0 + np.log2(posterior))
    blind = class_information(Fixed(False), dump, labels, 8, "cpu", False)
    assert blind["bits_saved_per_item"] == pytest.approx(0.0)
    assert blind["information_bits_per_item"] == pytest.approx(0.0, abs=1e-9)


def test_the_classifier_is_saved_once_and_trained_again_for_other_images_or_version(
        tmp_path, monkeypatch):
    from speechvq.data.images.builtin import render_images
    from speechvq.data.images.dump import ImageDump, write_dump
    from speechvq.evaluation import image_classifier

    monkeypatch.setattr(image_classifier, "EPOCHS", 1)
    images, labels = render_images(32, 0, 0)
    write_dump(tmp_path / "train", images, labels, [str(d) for d in range(10)], {})
    dump, path = ImageDump.open(tmp_path / "train"), tmp_path / "clf.pt"
    first, trained = image_classifier.load_or_train_classifier(path, dump)
    assert trained and not first.training
    again, trained = image_classifier.load_or_train_classifier(path, dump)
    assert not trained and image_classifier.predict(again, images).tolist() == \
        image_classifier.predict(first, images).tolist()
    monkeypatch.setattr(image_classifier, "VERSION", image_classifier.VERSION + 1)
    assert image_classifier.load_or_train_classifier(path, dump)[1]  # another recipe: retrained
    state = torch.load(path, weights_only=True)
    assert state["version"] == image_classifier.VERSION and "model" in state
    other, other_labels = render_images(32, 0, 1)
    write_dump(tmp_path / "other", other, other_labels, [str(d) for d in range(10)], {})
    assert image_classifier.load_or_train_classifier(path, ImageDump.open(tmp_path / "other"))[1]
