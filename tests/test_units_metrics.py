"""Unit metrics on hand-made cases with known answers: mapping accuracy, purity, PNMI, bitrate,
units files, deduplication refusal, frame labelling, baselines, the DTW of ABX (ABX itself:
test_abx.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechvq.errors import DataError
from speechvq.evaluation.speech import units as U
from speechvq.evaluation.speech.units import fit_code_to_phone, score_units
from speechvq.evaluation.speech.dtw import angular_distance, dtw_normalized, dtw_reference

PHONES = ["SIL", "AA", "B", "IY"]


# ------------------------------------------------------------------ mapping, purity, PNMI, bitrate

def test_perfect_correspondence_scores_one():
    rng = np.random.default_rng(0)
    labels = rng.integers(4, size=2000)
    codes = 2 * labels + rng.integers(2, size=2000)  # two codes per phone, never shared
    mapping = U.fit_code_to_phone(codes, labels, 8, 4)
    np.testing.assert_array_equal(mapping, [0, 0, 1, 1, 2, 2, 3, 3])
    assert U.mapping_accuracy(mapping, codes, labels) == 1.0
    m = U.purity_pnmi(codes, labels, 8, 4)
    assert m["phone_purity"] == pytest.approx(1.0)
    assert m["pnmi"] == pytest.approx(1.0)
    # each phone is split over two codes: cluster purity = sum_y max_z p(y, z) ~ 1/2
    assert 0.45 < m["cluster_purity"] < 0.55


def test_independent_codes_give_pnmi_near_zero():
    rng = np.random.default_rng(1)
    labels, codes = rng.integers(10, size=200_000), rng.integers(32, size=200_000)
    assert U.purity_pnmi(codes, labels, 32, 10)["pnmi"] < 0.005


def test_purity_and_pnmi_by_hand():
    # counts (code x phone): code0 = [3, 1], code1 = [0, 2], code2 = [1, 1]; 8 frames
    table = {(0, 0): 3, (0, 1): 1, (1, 1): 2, (2, 0): 1, (2, 1): 1}
    codes = np.array([c for (c, _), n in table.items() for _ in range(n)])
    labels = np.array([y for (_, y), n in table.items() for _ in range(n)])
    m = U.purity_pnmi(codes, labels, 3, 2)
    assert m["phone_purity"] == pytest.approx((3 + 2 + 1) / 8)  # sum_z max_y p(y, z)
    assert m["cluster_purity"] == pytest.approx((3 + 2) / 8)  # sum_y max_z p(y, z)
    mi = 3 / 8 * math.log(1.5) + 1 / 8 * math.log(0.5) + 2 / 8 * math.log(2.0)
    assert m["pnmi"] == pytest.approx(mi / math.log(2.0))
    # fairseq measure_teacher_quality.py's formulas (p_xy as (phone, code), 1e-8 in the logs)
    p = np.zeros((2, 3))
    for (c, y), n in table.items():
        p[y, c] = n / 8
    px, pz = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    fs_mi = (p * np.log(p / (px @ pz) + 1e-8)).sum()
    fs_hy = (-px * np.log(px + 1e-8)).sum()
    assert m["phone_purity"] == pytest.approx(p.max(axis=0).sum())
    assert m["cluster_purity"] == pytest.approx(p.max(axis=1).sum())
    assert m["pnmi"] == pytest.approx(fs_mi / fs_hy, abs=1e-6)


def test_mapping_fitted_on_one_set_applied_to_another():
    fit_codes = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    fit_labels = np.array([1, 1, 2, 2, 2, 3, 3, 0])
    mapping = U.fit_code_to_phone(fit_codes, fit_labels, 4, 4)
    # code 3 never occurs in the fitting set: it maps to the fitting set's majority phone, 2
    # (phone counts there: 0 -> 1, 1 -> 2, 2 -> 3, 3 -> 2)
    np.testing.assert_array_equal(mapping, [1, 2, 3, 2])
    codes = np.array([0, 1, 2, 3, 0, 1])
    labels = np.array([1, 2, 0, 2, 0, 0])  # right, right, wrong, right, wrong, SIL wrong
    assert U.mapping_accuracy(mapping, codes, labels) == pytest.approx(3 / 6)
    assert U.mapping_accuracy(mapping, codes, labels, exclude=0) == pytest.approx(3 / 3)
    out = U.score_units([codes], [labels], codes_fit=[fit_codes], labels_fit=[fit_labels],
                        n_codes=4, phones=PHONES, frame_rate_hz=50.0, check_dedup=False)
    assert out["mapping_accuracy"] == pytest.approx(0.5)
    assert out["mapping_accuracy_nosil"] == pytest.approx(1.0)
    assert out["chance"] == pytest.approx(3 / 6) and out["chance_nosil"] == pytest.approx(2 / 3)


def test_bitrate_perplexity_by_hand():
    units = [np.array([0, 0, 1, 1]), np.array([2, 3])]
    # 6 symbols in 2 s; p = (1/3, 1/3, 1/6, 1/6)
    h = -(2 * (1 / 3) * math.log2(1 / 3) + 2 * (1 / 6) * math.log2(1 / 6))
    assert U.bitrate_bps(units, [1.0, 1.0]) == pytest.approx(3.0 * h)
    assert U.bitrate_bps([np.array([5, 5, 5])], [1.0]) == 0.0
    assert U.perplexity(np.array([0, 1, 2, 3] * 5), 4) == pytest.approx(4.0)
    assert U.codes_used(np.array([7, 7, 2])) == 2


def test_majority_and_random_baselines():
    rng = np.random.default_rng(2)
    labels = [rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1]) for n in (3000, 2000)]
    maj = U.score_units(U.majority_codes([3000, 2000]), labels, n_codes=16, phones=PHONES,
                        frame_rate_hz=50.0)
    assert maj["mapping_accuracy"] == pytest.approx(maj["chance"])
    assert maj["pnmi"] == pytest.approx(0.0, abs=1e-12) and maj["bitrate_bps"] == 0.0
    rnd = U.score_units(U.random_codes([3000, 2000], 16, seed=0), labels, n_codes=16,
                        phones=PHONES, frame_rate_hz=50.0)
    assert rnd["pnmi"] < 0.01 and rnd["codes_used"] == 16
    assert rnd["perplexity"] == pytest.approx(16, rel=0.01)
    assert rnd["bitrate_bps"] == pytest.approx(50.0 * 4.0, rel=0.01)  # 50 Hz x 4 bits


# ------------------------------------------------------------------ units files and dedup

def test_units_file_formats_roundtrip(tmp_path):
    units = {"spkB_001": np.array([3, 3, 1]), "spkA_002": np.array([0, 5, 5, 5])}
    U.write_units(tmp_path / "u.txt", units)
    assert (tmp_path / "u.txt").read_text() == "spkA_002 0 5 5 5\nspkB_001 3 3 1\n"
    U.write_units(tmp_path / "u.km", units, format="km")
    assert (tmp_path / "u.km").read_text() == "3 3 1\n0 5 5 5\n"  # the mapping's order
    U.write_units(tmp_path / "u.gslm", units, format="gslm", dedup=True)
    assert (tmp_path / "u.gslm").read_text() == "spkB_001|3 1\nspkA_002|0 5\n"
    for name in ("u.txt", "u.gslm"):
        back = U.read_units(tmp_path / name)
        assert sorted(back) == ["spkA_002", "spkB_001"]
    np.testing.assert_array_equal(U.read_units(tmp_path / "u.txt")["spkA_002"], [0, 5, 5, 5])
    with pytest.raises(DataError, match=r"u\.km: a fairseq \.km file .* no ids"):
        U.read_units(tmp_path / "u.km")
    (tmp_path / "bad.txt").write_text("utt1 1 2\nutt2 1 x\n")
    with pytest.raises(DataError, match=r"bad.txt:2"):
        U.read_units(tmp_path / "bad.txt")


def test_deduplicated_units_are_refused():
    rng = np.random.default_rng(3)
    frames = [np.repeat(rng.integers(50, size=40), rng.integers(1, 6, size=40)) for _ in range(20)]
    assert not U.looks_deduplicated(frames)
    collapsed = [U.dedup(f) for f in frames]
    assert U.looks_deduplicated(collapsed)
    assert not U.looks_deduplicated([collapsed[0][:5]])  # too little data to tell
    labels = [np.zeros(c.size, dtype=np.int64) for c in collapsed]
    with pytest.raises(DataError, match="without --dedup"):
        U.score_units(collapsed, labels, n_codes=50, phones=PHONES, frame_rate_hz=50.0)
    # fewer units than the audio's frames (short of the repeat test) is refused too
    with pytest.raises(DataError, match="--frame-rate"):
        U.check_frame_level([np.array([1, 1, 2])], durations_s=[1.0], frame_rate_hz=50.0)
    U.check_frame_level(frames, durations_s=[f.size / 50.0 for f in frames], frame_rate_hz=50.0)


def test_frame_labels_follow_the_timing_convention(tmp_path):
    kaldi = pytest.importorskip("speechvq.data.speech.kaldi")
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("u1 1 0.00 0.05 SIL\nu1 1 0.05 0.08 AA\nu1 1 0.13 0.08 B\nu1 1 0.21 0.08 IY\n")
    segs = kaldi.read_ctm(ctm)["u1"]
    # 25 Hz: code i covers [0.04 i, 0.04 (i + 1)) s and takes the phone at its centre 0.04 i + 0.02
    idx = U.frame_phone_indices(segs, 8, 25.0, PHONES, utt="u1")
    assert [PHONES[i] for i in idx] == ["SIL", "AA", "AA", "B", "B", "IY", "IY", "SIL"]
    out = U.score_units({"u1": idx}, {"u1": idx}, n_codes=4, phones=PHONES, frame_rate_hz=25.0,
                        check_dedup=False)
    assert out["mapping_accuracy"] == 1.0 and out["pnmi"] == pytest.approx(1.0)


def test_mfcc_kmeans_baseline_separates_two_sounds():
    pytest.importorskip("speechvq.audio")
    sr, hop = 16000, 320
    t = np.arange(sr // 2) / sr
    tone = 0.3 * np.sin(2 * np.pi * 300 * t)
    noise = 0.3 * np.random.default_rng(0).standard_normal(t.size)
    wav = np.concatenate([tone, noise, tone[:1000]]).astype(np.float32)  # 1.0625 s
    f = U.mfcc_deltas_frames(wav, sr, hop)
    assert f.shape == (math.ceil(wav.size / hop), 39) and np.isfinite(f).all()
    assert U.mfcc_deltas_frames(wav[:5000], sr, 640).shape == (8, 39)
    labels = np.zeros(f.shape[0], dtype=np.int64)
    labels[25:50] = 1  # frames whose centre lies in the noise
    fit, ev = U.mfcc_kmeans_codes([f], [f[5:45]], n_codes=2, seed=0)
    inner = np.r_[2:23, 28:48]  # away from the edges and the tone/noise boundary
    mapping = U.fit_code_to_phone(fit[0][inner], labels[inner], 2, 2)
    assert U.mapping_accuracy(mapping, fit[0][inner], labels[inner]) == 1.0
    np.testing.assert_array_equal(ev[0], fit[0][5:45])


# ------------------------------------------------------------------ DTW

def test_dtw_matches_plain_reference():
    rng = np.random.default_rng(4)
    for k in range(60):
        n, m = rng.integers(1, 10, size=2)
        cost = rng.random((n, m))
        if k % 3 == 0:
            cost = np.round(cost, 1)  # ties
        assert dtw_normalized(cost) == pytest.approx(dtw_reference(cost), abs=1e-12)
    costs = [rng.random(rng.integers(1, 8, size=2)) for _ in range(30)]
    padded = np.full((30, 7, 7), 9.0)
    for b, c in enumerate(costs):
        padded[b, :c.shape[0], :c.shape[1]] = c
    got = dtw_normalized(padded, [c.shape[0] for c in costs], [c.shape[1] for c in costs])
    np.testing.assert_allclose(got, [dtw_reference(c) for c in costs], atol=1e-12)
    x = rng.standard_normal((5, 3))
    assert angular_distance(x, x).diagonal() == pytest.approx(np.zeros(5), abs=1e-6)
    assert angular_distance(x[:1], -x[:1])[0, 0] == pytest.approx(1.0)
    null = np.zeros((2, 3))  # all-zero frames: 1 from the others, 0 from each other (the tool's)
    np.testing.assert_array_equal(angular_distance(null, np.r_[x[:1], null[:1]]), [[1, 0], [1, 0]])


def test_units_report_keys_and_utterance_alignment():
    codes = {"b": np.array([0, 0, 1, 1]), "a": np.array([1, 1, 0, 0])}
    labels = {"a": np.array([1, 1, 2, 2]), "b": np.array([2, 2, 1, 1])}  # other key order
    rep = U.units_report({"vqvae": (codes, None), "majority": (U.majority_codes([4, 4]), None)},
                         labels, phones=PHONES, frame_rate_hz=50.0, codebook_size=2,
                         fit_on="eval")
    assert {"frame_rate_hz", "codebook_size", "fit_on", "n_phones", "vqvae", "majority"} <= set(rep)
    assert rep["vqvae"]["mapping_accuracy"] == 1.0 and rep["vqvae"]["pnmi"] == pytest.approx(1.0)
    assert rep["majority"]["mapping_accuracy"] == pytest.approx(0.5)
    with pytest.raises(DataError, match="different utterances"):
        U.score_units(codes, {"a": labels["a"]}, n_codes=2, phones=PHONES, frame_rate_hz=50.0)


@pytest.mark.parametrize("fit_elsewhere,sil", [(False, 0), (True, 0), (False, 2), (True, 2)])
def test_unit_intervals_equal_a_brute_force_bootstrap_over_utterances(monkeypatch, fit_elsewhere,
                                                                      sil):
    from speechvq.evaluation import bootstrap
    from speechvq.evaluation.speech.units import unit_intervals

    monkeypatch.setattr(bootstrap, "RESAMPLES", 25)
    rng = np.random.default_rng(3)
    k, phones = 6, ["a", "b", "c"]
    phones.insert(sil, "SIL")
    lab = [rng.integers(0, 4, rng.integers(5, 40)) for _ in range(9)]
    codes = [np.where(rng.random(len(y)) < 0.6, y + 2 * (y % 2), rng.integers(0, k, len(y)))
             for y in lab]
    dur = [len(c) / 50 + 0.01 * i for i, c in enumerate(codes)]
    fit = dict(codes_fit=codes[:4], labels_fit=lab[:4]) if fit_elsewhere else {}
    mapping = fit_code_to_phone(np.concatenate(codes[:4]), np.concatenate(lab[:4]), k, 4)
    got = unit_intervals(codes, lab, n_codes=k, n_phones=4, sil=sil, durations_s=dur, seed=5,
                         mapping=mapping if fit_elsewhere else None)
    brute = {}
    for row in bootstrap.resample_counts(len(codes), 5):
        pick = np.repeat(np.arange(len(codes)), row)
        m = score_units([codes[i] for i in pick], [lab[i] for i in pick], n_codes=k,
                        phones=phones, frame_rate_hz=50, durations_s=[dur[i] for i in pick],
                        check_dedup=False, **fit)
        for name in got:
            brute.setdefault(name, []).append(m[name])
    assert set(got) >= {"mapping_accuracy", "mapping_accuracy_nosil", "phone_purity",
                        "cluster_purity", "pnmi", "perplexity", "codes_used", "bitrate_bps",
                        "bitrate_bps_dedup"}
    for name, values in brute.items():
        np.testing.assert_allclose(got[name], bootstrap.interval(values), rtol=1e-9,
                                   err_msg=name)
    whole = score_units(codes, lab, n_codes=k, phones=phones, frame_rate_hz=50, durations_s=dur,
                        check_dedup=False, **fit)
    assert whole["n_utterances"] == 9 and set(whole["ci95"]) == set(got)
