"""ABX (speechvq.evaluation.speech.abx) against the ZeroSpeech team's tool on a checked-in
fixture, on hand-counted cases, and its sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speechvq.data.speech.alignments import read_ctm
from speechvq.errors import DataError
from speechvq.evaluation.speech.abx import abx, abx_items, frame_span
from speechvq.evaluation.speech.abx_export import item_file_text, write_abx_inputs

FIXTURE = Path(__file__).parent / "data" / "abx"

# The ZeroSpeech tool's figures on tests/data/abx (3 speakers x 3 utterances, phones p t a i u,
# 4-dim features at 50 Hz, one all-zero frame in s1_1; no group holds more than the tool's 10
# tokens per (context, speaker, phone) nor more than its 5 X speakers, so it scores every
# triplet and the seed does not matter). Computed once with PyPI zerospeech-libriabx2 0.9.8 in a
# venv of its own (pip install torch==2.13.0 zerospeech-libriabx2==0.9.8; the tool imports
# torchaudio only for CPC checkpoints, so an empty `torchaudio` package on PYTHONPATH stands in
# for it), from tests/data/abx:
#   zrc-abx2 feats phone-fixture.item --file_extension .npy --feature_size 0.02 \
#       --distance_mode cosine --context_mode within --out /tmp/abx-phone
#   zrc-abx2 feats triphone-fixture.item --file_extension .npy --feature_size 0.02 \
#       --distance_mode cosine --context_mode within --out /tmp/abx-triphone
# which printed "ABX within_context within_speaker : ..." and "... across_speaker : ...":
TOOL = {"phone": (0.1675347238779068, 0.22815391421318054),
        "triphone": (0.3368055820465088, 0.38291168212890625)}


def _fixture():
    segments = read_ctm(FIXTURE / "phones.ctm")
    speakers = dict(line.split() for line in (FIXTURE / "utt2spk").read_text().splitlines())
    feats = {u: np.load(FIXTURE / "feats" / f"{u}.npy") for u in speakers}
    return segments, speakers, feats


@pytest.mark.parametrize("span", ["phone", "triphone"])
def test_matches_the_zerospeech_tool_on_the_fixture(span):
    segments, speakers, feats = _fixture()
    items = abx_items(segments, speakers, {u: len(f) for u, f in feats.items()}, 50.0, span=span)
    # the items are the checked-in .item file the tool read, line for line
    assert item_file_text(items) == (FIXTURE / f"{span}-fixture.item").read_text()
    r = abx(feats, items)
    assert r.within.n_triplets == r.within.n_population > 0  # every triplet scored
    for score in (r.within, r.across):  # the bootstrap interval over items holds the figure
        assert score.ci95[0] <= score.error <= score.ci95[1]
    assert r.within.error == pytest.approx(TOOL[span][0], abs=0.002)  # 0.2 points
    assert r.across.error == pytest.approx(TOOL[span][1], abs=0.002)


def test_frames_are_sliced_as_the_tool_slices_them():
    # centre of frame i = (i + 1/2) / 50 s; the tool keeps [ceil(50 t0 - 1/2), floor(50 t1 - 1/2))
    assert frame_span(0.10, 0.20, 50.0, 100) == (5, 9)
    assert frame_span(0.13, 0.29, 50.0, 100) == (6, 13)  # 50 * 0.29 - 0.5 = 13.999...
    assert frame_span(0.0, 0.05, 50.0, 100) == (0, 2)
    assert frame_span(1.9, 2.5, 50.0, 100) == (95, 100)  # cut to the features


def _segments(text: dict[str, str], dur: float = 0.04) -> dict[str, list]:
    """utt -> 'p x q' becomes [(start, dur, phone)], every phone `dur` s (2 frames at 50 Hz)."""
    return {u: [(round(k * dur, 6), dur, p) for k, p in enumerate(s.split())]
            for u, s in text.items()}


def test_hand_counted_triplets_and_errors():
    text = {"s1_1": "SIL P x Q SIL", "s1_2": "P x Q", "s1_3": "P y Q", "s2_1": "P x Q"}
    segs = _segments(text)
    spk = {u: u[:2] for u in text}
    n_frames = {u: 2 * len(s.split()) for u, s in text.items()}
    items = abx_items(segs, spk, n_frames, 50.0)
    assert [(it.utt, it.start, it.end, it.phone, it.context) for it in items] == [
        ("s1_1", 4, 5, "x", ("P", "Q")), ("s1_2", 2, 3, "x", ("P", "Q")),
        ("s1_3", 2, 3, "y", ("P", "Q")), ("s2_1", 2, 3, "x", ("P", "Q"))]
    tri = abx_items(segs, spk, n_frames, 50.0, span="triphone")
    assert [(it.start, it.end) for it in tri] == [(2, 7), (0, 5), (0, 5), (0, 5)]
    code = {"SIL": 0, "P": 1, "Q": 1, "x": 2, "y": 3}
    feats = {u: np.eye(4)[[code[p] for p in s.split() for _ in range(2)]] for u, s in text.items()}
    r = abx(feats, items)
    # within s1: A, X from {s1_1, s1_2} (2 orders), B = s1_3; across: A from {s1_1, s1_2},
    # B = s1_3, X = s2_1; "y" has one token in s1, so it is never A within, and no other
    # speaker has "y" to be X across
    assert (r.within.n_triplets, r.across.n_triplets) == (2, 2)
    assert r.within.error == 0.0 and r.across.error == 0.0 and r.n_items == 4
    feats["s2_1"] = np.eye(4)[[1, 1, 3, 3, 1, 1]]  # X now says "y": across is all errors
    assert abx(feats, items).across.error == 1.0
    one_spk = abx(feats, abx_items(segs, {u: "s1" for u in text}, n_frames, 50.0))
    assert one_spk.across.error is None and one_spk.across.n_triplets == 0
    with pytest.raises(DataError, match="s1_2"):
        abx({**feats, "s1_2": feats["s1_2"][:2]}, items)
    with pytest.raises(DataError, match="no speaker"):
        abx_items(segs, {}, n_frames, 50.0)


def test_averages_over_contexts_then_speakers():
    # one phone pair (A = x, B = y; y has one token per group, so it is never A); cells:
    # s1 in (P, Q): error 1, s1 in (K, L): error 0, s2 in (P, Q): error 0. Contexts first
    # (s1: 1/2), then speakers: 1/4; a plain mean over cells or triplets would give 1/3.
    text = {"s1_1": "P x Q P x Q", "s1_2": "P y Q", "s1_3": "K x L K x L K y L",
            "s2_1": "P x Q P x Q P y Q"}
    degrees = {"P": 180, "Q": 180, "K": 180, "L": 180, "x": 0, "y": 90}
    angles = {u: [degrees[p] for p in s.split() for _ in range(2)] for u, s in text.items()}
    # an item is the first frame of its phone (phone k: frames 2k, 2k + 1; the tool keeps 2k)
    angles["s1_1"][8] = 90  # s1's two x in (P, Q) at 0 and 90 degrees, its y at 45: X is
    angles["s1_2"][2] = 45  # always nearer to B than to A
    angles["s1_3"][8] = angles["s2_1"][8] = 10  # elsewhere the x are 10 degrees apart
    feats = {u: np.stack([np.cos(np.radians(a)), np.sin(np.radians(a))], 1)
             for u, a in angles.items()}
    segs = _segments(text)
    items = [it for it in abx_items(segs, {u: u[:2] for u in text},
                                    {u: len(f) for u, f in feats.items()}, 50.0)
             if it.phone in ("x", "y")]
    r = abx(feats, items)
    assert r.within.n_triplets == 6 and r.within.error == pytest.approx(0.25)


def test_sample_interval_grows_to_the_asked_width_and_covers_the_full_figure():
    rng = np.random.default_rng(0)
    text, feats = {}, {}
    protos = rng.standard_normal((6, 8))
    for s in range(3):
        for u in range(12):
            ph = [f"P{p}" for p in rng.integers(6, size=40)]
            ph = [p for k, p in enumerate(ph) if k == 0 or p != ph[k - 1]]
            utt = f"s{s}_{u:02d}"
            text[utt] = " ".join(ph)
            lab = np.repeat([int(p[1:]) for p in ph], 2)  # (T,)
            feats[utt] = protos[lab] + 1.5 * rng.standard_normal((lab.size, 8))
    segs = _segments(text)
    items = abx_items(segs, {u: u[:2] for u in text}, {u: len(f) for u, f in feats.items()}, 50.0)
    full = abx(feats, items, max_triplets=10**7)
    assert full.within.n_triplets == full.within.n_population > 20_000
    for width in (0.08, 0.03):
        r = abx(feats, items, max_triplets=1000, seed=1, ci_width=width)
        for got, exact in ((r.within, full.within), (r.across, full.across)):
            assert abs(got.error - exact.error) <= width  # the sample is that precise
            low, high = got.ci95  # and its interval over items holds it
            assert low <= got.error <= high
            assert got.n_population == exact.n_population
    assert r.within.n_triplets > 1000  # the 3-point interval needed more than the first 1000
    # when the interval would need every triplet, every triplet is scored
    assert abx(feats, items, max_triplets=1000, ci_width=1e-6).within == full.within


def test_export_writes_what_the_tool_reads(tmp_path):
    segments, speakers, feats = _fixture()
    items = abx_items(segments, speakers, {u: len(f) for u, f in feats.items()}, 50.0)
    out = write_abx_inputs(tmp_path, "fixture", "phone", items,
                           {"encoder": feats, "mfcc": feats}, 50.0)
    assert (out / "phone-fixture.item").read_text() == (FIXTURE / "phone-fixture.item").read_text()
    np.testing.assert_array_equal(np.load(out / "mfcc" / "s1_1.npy"), feats["s1_1"])
    script = (out / "zrc_abx2.sh").read_text()
    assert ("zrc-abx2 encoder phone-fixture.item --file_extension .npy --feature_size 0.02 "
            "--distance_mode cosine --context_mode within --out scores/encoder") in script
    write_abx_inputs(tmp_path, "fixture", "phone", items, {"codes": feats}, 50.0)  # replaced
    assert sorted(p.name for p in out.iterdir()) == ["codes", "phone-fixture.item", "zrc_abx2.sh"]


def test_the_item_bootstrap_weights_reproduce_the_tools_average(monkeypatch):
    # a "resample" that draws every item once must give back the figure itself: the per-triplet
    # weights (draws of A x B x X) and the cell averaging are the tool's
    from speechvq.evaluation import bootstrap

    segments, speakers, feats = _fixture()
    items = abx_items(segments, speakers, {u: len(f) for u, f in feats.items()}, 50.0)
    monkeypatch.setattr(bootstrap, "resample_counts",
                        lambda n, seed, resamples=None: np.ones((3, n), dtype=np.int32))
    r = abx(feats, items)
    for score in (r.within, r.across):
        assert score.ci95 == pytest.approx([score.error, score.error], abs=1e-12)
