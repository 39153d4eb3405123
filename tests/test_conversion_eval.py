"""`speechvq evaluate conversion`: speaker-ID, content and MCD plumbing on hand-made conversions.

The conversion dir of `evaldata` holds five "conversions" whose answers are known: a copy of the
target's own reading (MCD 0), two renderings in the target's voice, one sentence the target never
read (no parallel reading: skipped and counted), and the unchanged source (a failed conversion:
identified as the source, code agreement 100 %, MCD equal to the baseline).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from evaldata import SENTENCES, SPEAKERS, synth
from speechvq.config.speech import DataConfig
from speechvq.data.speech.utterances import Utterances
from speechvq.errors import DataError
from speechvq.evaluation.speech.conversion import evaluate_conversion, format_conversion
from speechvq.evaluation.speech.conversion_speaker import (heldout_split, speaker_features,
                                                           train_speaker_classifier)
from speechvq.evaluation.speech.mcd import mcd


@pytest.fixture(scope="module")
def data(eval_corpus):
    return eval_corpus


@pytest.fixture(scope="module")
def result(data, tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp_conversion")
    return evaluate_conversion(data["conv"], data["test"], data["exp"], train=data["train"],
                               exp_dir=exp, name="hand", batch_size=1, progress=False), exp


def test_speaker_classifier_separates_clearly_different_speakers():
    cfg = DataConfig()
    feats, spk = [], []
    for s in SPEAKERS:
        for k in range(len(SENTENCES)):
            feats.append(speaker_features(synth(SENTENCES[k], s, seed=1000 + k)[0], cfg))
            spk.append(s)
    feats, spk = np.stack(feats), np.array(spk)
    assert feats.shape == (len(spk), 2 * (cfg.n_mels + 13))
    train = np.arange(len(spk)) % len(SENTENCES) < 4  # sentences 0-3 train, 4-6 test
    clf = train_speaker_classifier(feats[train], spk[train])
    assert np.mean(clf.predict(feats[~train]) == spk[~train]) == 1.0


def test_heldout_split_is_seeded_per_speaker_and_disjoint():
    utts = [f"s{k % 3}_{k}" for k in range(30)]
    spk = [u[:2] for u in utts]
    fit, held = heldout_split(utts, spk, 0.2, seed=3)
    assert heldout_split(utts, spk, 0.2, seed=3) == (fit, held)
    assert not set(fit) & set(held) and set(fit) | set(held) == set(utts)
    assert sorted(u[:2] for u in held) == ["s0", "s0", "s1", "s1", "s2", "s2"]


def test_speaker_id_scores(result):
    m = result[0]["conversion"]["hand"]
    assert m["speaker_id_heldout_accuracy"] == 1.0  # reported first: the classifier works
    assert m["speaker_id_heldout_set"].startswith("ref") and m["speaker_id_n_heldout"] == 8
    assert m["speaker_id_n_train"] == 12 and m["speaker_id_n_speakers"] == 3
    assert m["n_converted"] == 5 and m["n_seen_sources"] == 5
    assert m["speaker_id_target"] == pytest.approx(4 / 5)  # all but the unchanged source
    assert m["speaker_id_source"] == pytest.approx(1 / 5)


def test_every_conversion_figure_has_a_bootstrap_interval_over_the_files(result):
    from speechvq.evaluation.bootstrap import interval, resample_counts

    m, rows = result[0]["conversion"]["hand"], result[0]["details"]["utterances"]
    ci = m["ci95"]
    for key in ("speaker_id_heldout_accuracy", "speaker_id_target", "speaker_id_source",
                "code_agreement", "mapping_accuracy", "mcd_db", "mcd_baseline_db",
                "mcd_topline_db"):
        assert ci[key][0] <= m[key] <= ci[key][1], key
    # the MCD interval by hand: each resample's mean over the drawn files that have an MCD
    means = []
    for row in resample_counts(len(rows), 0):
        drawn = [r["mcd_db"] for r, n in zip(rows, row) for _ in range(n) if r["mcd_db"] is not None]
        means.append(np.mean(drawn) if drawn else np.nan)
    assert ci["mcd_db"] == pytest.approx(interval(means))


def test_content_scores(result, data):
    m, rows = result[0]["conversion"]["hand"], {r["utt"]: r for r in
                                                 result[0]["details"]["utterances"]}
    # the unchanged source (batch_size=1: the last codes of a batched utterance depend on
    # its batch-mates' padding)
    assert rows["spk3-spk2_s5"]["code_agreement"] == 1.0
    assert 0.0 <= m["code_agreement"] <= 1.0
    assert m["mapping_fit_on"] == str(data["train"])
    assert 0.0 < m["mapping_accuracy_source"] <= 1.0 and 0.0 <= m["mapping_accuracy"] <= 1.0


def test_mcd_with_baseline_and_topline(result, data):
    m, rows = result[0]["conversion"]["hand"], {r["utt"]: r for r in
                                                 result[0]["details"]["utterances"]}
    test = Utterances(data["test"], 16000)

    def d(a, b):
        return mcd(test.waveform(a), test.waveform(b), 16000)

    copy = rows["spk2-spk1_s4"]  # the target's own reading: MCD 0
    assert copy["mcd_db"] == pytest.approx(0.0, abs=1e-5)
    assert copy["mcd_baseline_db"] == pytest.approx(d("spk2_s4", "spk1_s4"))
    # spk2 read sentence 4 once: topline against another training speaker, not the source's
    assert copy["topline"] == "target vs another training speaker"
    assert copy["mcd_topline_db"] == pytest.approx(d("spk2_s4", "spk3_s4"))
    two = rows["spk1-spk2_s4"]  # spk1 read sentence 4 twice
    assert two["topline"] == "two readings by the target"
    assert two["mcd_topline_db"] == pytest.approx(d("spk1_s4", "spk1_s4b"))
    same = rows["spk3-spk2_s5"]
    assert same["mcd_db"] == pytest.approx(same["mcd_baseline_db"])
    assert rows["spk1-spk2_s6"]["mcd_db"] is None  # spk1 never read sentence 6
    assert m["n_mcd"] == 4 and m["n_no_parallel"] == 1 and m["n_topline"] == 4
    scored = [r for r in rows.values() if r["mcd_db"] is not None]
    assert m["mcd_db"] == pytest.approx(np.mean([r["mcd_db"] for r in scored]))
    assert m["mcd_baseline_db"] > m["mcd_db"]
    assert "two readings by the target (1)" in m["mcd_topline"]


def test_json_file_and_report_inputs(result, data):
    res, exp = result
    path = exp / "eval" / "conversion_hand.json"
    assert json.loads(path.read_text()) == res
    assert res["command"].startswith("speechvq evaluate conversion --model ")
    assert f"--ref {data['test']}" in res["command"] and "--name hand" in res["command"]
    assert res["data"]["sources"] == [str(data["test"])]
    spectro = res["details"]["spectrograms"]
    assert 1 <= len(spectro) <= 3
    for triple in spectro:
        for role in ("source", "converted", "target"):
            assert triple[role]["utt"] in Utterances(triple[role]["data"], 16000).utts
    assert "MCD topline" in format_conversion(res)


def test_sources_found_beside_ref_and_errors(data, tmp_path):
    with pytest.raises(DataError, match="utt2src"):
        evaluate_conversion(data["test"], data["test"], data["exp"], exp_dir=tmp_path,
                            progress=False)
    # --ref without the sources: found in the data dirs beside it (here: test, beside train)
    res = evaluate_conversion(data["conv"], data["train"], data["exp"], exp_dir=tmp_path,
                              progress=False)
    m = res["conversion"]["conv"]
    assert res["data"]["sources"] == [str(data["test"])]
    assert m["n_mcd"] == 0 and m["n_no_parallel"] == 5  # train has no test sentences
    assert m["speaker_id_heldout_set"].startswith("seeded 20% split")


def _subset(src, dst, drop):
    """A copy of conversion dir ``src`` without the utterances in ``drop``."""
    from speechvq.data.speech.kaldi import DataDir

    d = DataDir.load(src)
    keep = [u for u in d.utt2spk if u not in drop]
    DataDir(path=dst, wav_scp={u: d.wav_scp[u] for u in keep},
            utt2spk={u: d.utt2spk[u] for u in keep}, utt2src={u: d.utt2src[u] for u in keep},
            text={u: d.text[u] for u in keep}).save(dst)
    return dst


def test_several_dirs_share_one_classifier_and_match_single_runs(data, result, tmp_path,
                                                                 monkeypatch, capsys):
    from speechvq import cli
    from speechvq.evaluation.speech import conversion_speaker

    # the second dir differs from the first, so swapped or leaking results would show
    second = _subset(data["conv"], tmp_path / "conv2", {"spk2-spk1_s4", "spk3-spk2_s5"})
    alone = evaluate_conversion(second, data["test"], data["exp"], train=data["train"],
                                exp_dir=tmp_path / "alone", name="two", batch_size=1,
                                progress=False)
    fits = []
    real_fit = conversion_speaker.train_speaker_classifier
    monkeypatch.setattr(conversion_speaker, "train_speaker_classifier",
                        lambda x, y, seed=0: fits.append(len(y)) or real_fit(x, y, seed))
    code = cli.main(["evaluate", "conversion", "--model", str(data["exp"]), "--data",
                     str(data["conv"]), str(second), "--ref", str(data["test"]), "--train",
                     str(data["train"]), "--exp", str(tmp_path), "--name", "one, two",
                     "--batch-size", "1", "--no-progress"])
    assert code == 0 and len(fits) == 1  # fitted once for both dirs
    expected = {"one": result[0]["conversion"]["hand"], "two": alone["conversion"]["two"]}
    assert expected["one"]["n_converted"] == 5 and expected["two"]["n_converted"] == 3
    for name in ("one", "two"):
        res = json.loads((tmp_path / "eval" / f"conversion_{name}.json").read_text())
        got, want = dict(res["conversion"][name]), dict(expected[name])
        ci, want_ci = got.pop("ci95"), want.pop("ci95")
        assert got == pytest.approx(want)
        assert all(ci[k] == pytest.approx(v) for k, v in want_ci.items() if v) and ci.keys() == \
            want_ci.keys()
        assert f"--name {name}" in res["command"] and "--batch-size 1" in res["command"]
    out = capsys.readouterr().out
    assert out.count("MCD topline") == 2

    def refused(*args):
        assert cli.main(["evaluate", "conversion", "--model", str(data["exp"]), "--ref",
                         str(data["test"]), "--exp", str(tmp_path / "refused"), *args]) == 2
        assert not (tmp_path / "refused").exists()  # nothing scored or written
        return capsys.readouterr().err

    assert "--name has 1 names for 2 --data dirs" in refused(
        "--data", str(data["conv"]), str(second), "--name", "only_one")
    assert "both be written as conversion_conv.json" in refused(
        "--data", str(data["conv"]), str(tmp_path / "x" / "conv"))
    assert "must be letters" in refused("--data", str(data["conv"]), str(second),
                                        "--name", "ok,b/ad")


def test_second_reading_in_another_ref_dir_gives_the_same_topline(data, result, tmp_path):
    from evaldata import write_dir

    # data["test"] split in two: the first readings, and spk1's second reading of sentence 4
    first = {f"{spk}_s{s}": (spk, s) for spk in SPEAKERS for s in (4, 5)}
    first["spk2_s6"] = ("spk2", 6)
    test1 = write_dir(tmp_path / "test1", first)
    reread = write_dir(tmp_path / "reread", {"spk1_s4b": ("spk1", 4)})
    kw = dict(train=data["train"], src=test1, exp_dir=tmp_path, batch_size=1, progress=False)
    both = evaluate_conversion(data["conv"], [test1, reread], data["exp"], name="both", **kw)
    alone = evaluate_conversion(data["conv"], test1, data["exp"], name="alone", **kw)
    m, single = both["conversion"]["both"], result[0]["conversion"]["hand"]
    for key in ("mcd_db", "mcd_baseline_db", "mcd_topline_db", "mcd_topline", "n_topline"):
        assert m[key] == pytest.approx(single[key]), key
    assert "two readings by the target (1)" in m["mcd_topline"]
    assert "two readings" not in alone["conversion"]["alone"]["mcd_topline"]
    assert f"--ref {test1} {reread}" in both["command"]
    assert both["data"]["more_refs"] == [str(reread)]
    # a ref dir given twice (however spelled) adds no reading: no fake 0 dB topline
    twice = evaluate_conversion(data["conv"], [data["test"], str(data["test"]) + "/"],
                                data["exp"], name="twice", **kw)
    for key in ("mcd_topline_db", "mcd_topline"):
        assert twice["conversion"]["twice"][key] == pytest.approx(single[key]), key
