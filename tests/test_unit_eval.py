"""`speechvq evaluate units`: the orchestration around the unit metrics (model and file modes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from evaldata import PHONES
from speechvq import cli
from speechvq.data.speech.kaldi import read_ctm
from speechvq.data.codes import dedup, write_units
from speechvq.errors import DataError
from speechvq.evaluation.speech.unit_eval import (evaluate_units_file, evaluate_units_model,
                                           format_units_table)

METRICS = ("mapping_accuracy", "mapping_accuracy_nosil", "phone_purity", "cluster_purity",
           "pnmi", "bitrate_bps")
SYSTEMS = ("vqvae", "majority", "random", "mfcc_kmeans")
HOP = 160  # the tiny model's samples per code


@pytest.fixture(scope="module")
def data(eval_corpus):
    return eval_corpus


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory):
    exp = tmp_path_factory.mktemp("exp_units")
    return evaluate_units_model(data["exp"], data["test"], fit_on=data["train"], exp_dir=exp,
                                progress=False), exp


def centre_labels(segments, n_frames):
    """The timing convention written out: frame i gets the phone holding (i + 0.5) * hop."""
    out = []
    for i in range(n_frames):
        c = (i + 0.5) * HOP / 16000
        out.append(next((p for s, d, p in segments if s <= c < s + d), "SIL"))
    return out


def test_json_has_design_keys_and_says_where_the_mapping_was_fitted(fitted, data):
    result, exp = fitted
    on_disk = json.loads((exp / "eval" / "units_test.json").read_text())
    assert on_disk == result and result["output"] == str(exp / "eval" / "units_test.json")
    block = result["units"]["test"]
    assert block["fit_on"] == str(data["train"])
    assert block["frame_rate_hz"] == 100.0 and block["codebook_size"] == 16
    assert block["n_phones"] == len(PHONES)
    for system in SYSTEMS:
        for metric in METRICS:
            assert isinstance(block[system][metric], float), (system, metric)
    assert "--fit-on" in result["command"] and str(data["train"]) in result["command"]
    assert result["command"].startswith("speechvq evaluate units --model ")
    assert result["data"]["data"] == str(data["test"]) and result["data"]["n_utts"] == 8
    for key in ("abx_within", "abx_across", "abx_codes_within", "abx_codes_across"):
        assert 0.0 <= block["vqvae"][key] <= 1.0
    assert block["vqvae"]["abx_n_triplets_across"] > 0
    assert block["mfcc_kmeans"]["abx_across"] is not None
    assert block["vqvae"]["abx_items"] == block["mfcc_kmeans"]["abx_items"] == "phone"
    # the majority code maps to the training data's majority phone
    assert block["majority"]["mapping_accuracy"] == pytest.approx(block["majority"]["chance"])


def test_vqvae_accuracy_matches_an_independent_recount(fitted, data):
    """Encode, label by the timing convention, fit on train, score test: by hand."""
    from speechvq.encode import encode_utterances, load_vqvae
    from speechvq.data.speech.utterances import Utterances

    result, _ = fitted
    model = load_vqvae(data["exp"], device=torch.device("cpu"))
    counts = np.zeros((16, len(PHONES)), dtype=np.int64)
    train_ctm = read_ctm(data["train"] / "phones.ctm")
    for utt, codes in encode_utterances(model, Utterances(data["train"], 16000),
                                        progress=False).items():
        for c, p in zip(codes, centre_labels(train_ctm[utt], len(codes))):
            counts[c, PHONES.index(p)] += 1
    mapping = counts.argmax(1)
    mapping[counts.sum(1) == 0] = counts.sum(0).argmax()
    test_ctm = read_ctm(data["test"] / "phones.ctm")
    hits = total = 0
    for utt, codes in encode_utterances(model, Utterances(data["test"], 16000),
                                        progress=False).items():
        labels = centre_labels(test_ctm[utt], len(codes))
        assert len(codes) == math.ceil(len(Utterances(data["test"], 16000).waveform(utt)) / HOP)
        hits += sum(PHONES[mapping[c]] == p for c, p in zip(codes, labels))
        total += len(codes)
    vq = result["units"]["test"]["vqvae"]
    assert vq["mapping_accuracy"] == pytest.approx(hits / total)
    assert vq["n_frames"] == total
    details = result["details"]
    assert sum(details["code_counts"]) == total
    assert np.asarray(details["cooccurrence"]).sum() == total
    assert details["mapping"] == [PHONES[i] for i in mapping]


def test_fit_on_defaults_to_the_scored_data_and_abx_inputs_are_exported(data, tmp_path):
    result = evaluate_units_model(data["exp"], data["test"], exp_dir=tmp_path,
                                  abx_max_triplets=10, abx_items="triphone",
                                  export_abx=tmp_path / "abx", progress=False)
    assert result["units"]["test"]["fit_on"] == "eval"
    assert "--fit-on" not in result["command"] and result["data"]["fit_on"] is None
    table = format_units_table(result)
    assert "mapping fitted on the scored data" in table and "three-phone items" in table
    assert "--abx-items triphone --export-abx" in result["command"]
    vq = result["units"]["test"]["vqvae"]
    out = tmp_path / "abx" / "test"
    lines = (out / "triphone-test.item").read_text().splitlines()
    assert lines[0] == "#file onset offset #phone prev-phone next-phone speaker"
    assert len(lines) - 1 == vq["abx_n_items"] > 0
    utt = lines[1].split()[0]
    assert np.load(out / "encoder" / f"{utt}.npy").shape[0] == np.load(
        out / "mfcc" / f"{utt}.npy").shape[0] == np.load(out / "codes" / f"{utt}.npy").shape[0]
    assert "--feature_size 0.01" in (out / "zrc_abx2.sh").read_text()  # the tiny model: 100 Hz


def test_data_without_alignments_gets_label_free_statistics(data, tiny_data_dir, tmp_path,
                                                             capsys):
    code = cli.main(["evaluate", "units", "--model", str(data["exp"]), "--data",
                     str(tiny_data_dir), "--exp", str(tmp_path), "--name", "plain",
                     "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "no phone alignments, label-free statistics only" in out
    res = json.loads((tmp_path / "eval" / "units_unscored_plain.json").read_text())
    block = res["units_unscored"]["plain"]
    assert block["n_utterances"] == res["data"]["n_utts"] > 0
    assert 1 <= block["codes_used"] <= block["codebook_size"]
    for key in ("perplexity", "bitrate_bps", "bitrate_bps_dedup"):
        low, high = block["ci95"][key]
        assert low <= block[key] <= high, key
    assert sum(res["details"]["code_counts"]) == block["n_frames"]
    # the same statistics from the units of any system, without --alignments
    units = tmp_path / "plain.txt"
    assert cli.main(["encode", "--model", str(data["exp"]), "--data", str(tiny_data_dir),
                     "--out", str(units), "--no-progress"]) == 0
    frame_rate = block["frame_rate_hz"]
    assert cli.main(["evaluate", "units", "--units", str(units), "--frame-rate",
                     f"{frame_rate}", "--codebook-size", str(block["codebook_size"]),
                     "--exp", str(tmp_path), "--name", "file"]) == 0
    same = json.loads((tmp_path / "eval" / "units_unscored_file.json").read_text())
    assert same["units_unscored"]["file"] == block
    # and the report shows each once, under its result's name
    from speechvq.evaluation.report import make_report
    md = make_report(tmp_path).read_text()
    assert md.count("## Units without alignments: plain") == 1
    assert "95 % interval" in md


def test_unknown_abx_items_is_one_line(data, tmp_path, capsys):
    code = cli.main(["evaluate", "units", "--model", str(data["exp"]), "--data",
                     str(data["test"]), "--exp", str(tmp_path), "--abx-items", "quad"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "'quad' is unknown; use one of phone, triphone" in err


def perfect_units(data) -> dict:
    """One unit per 10 ms frame: the index of the phone at the frame's centre."""
    import soundfile as sf

    ctm = read_ctm(data["test"] / "phones.ctm")
    out = {}
    for utt, segs in ctm.items():
        n = math.ceil(sf.info(str(data["test"] / "wav" / f"{utt}.wav")).frames / HOP)
        out[utt] = np.array([PHONES.index(p) for p in centre_labels(segs, n)])
    return out


def test_file_mode_scores_perfect_units_at_100_percent(data, tmp_path, capsys):
    write_units(tmp_path / "units.txt", perfect_units(data))
    code = cli.main(["evaluate", "units", "--units", str(tmp_path / "units.txt"),
                     "--frame-rate", "100", "--alignments", str(data["test"]), "--exp",
                     str(tmp_path / "exp"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "units" in out and "100.0" in out
    result = json.loads((tmp_path / "exp" / "eval" / "units_units.json").read_text())
    block = result["units"]["units"]
    assert block["units"]["mapping_accuracy"] == 1.0
    assert block["units"]["pnmi"] == pytest.approx(1.0)
    assert block["codebook_size"] == len(PHONES) and block["fit_on"] == "eval"
    assert set(block) >= {"units", "majority", "random", "mfcc_kmeans"}
    # from a bare CTM: no audio, so no MFCC baseline, and the output says so
    result = evaluate_units_file(tmp_path / "units.txt", 100, data["test"] / "phones.ctm",
                                 exp_dir=tmp_path / "exp", name="ctm", progress=False)
    assert "mfcc_kmeans" not in result["units"]["ctm"]
    assert result["data"]["mfcc_kmeans"].startswith("skipped")
    assert result["units"]["ctm"]["units"]["mapping_accuracy"] == 1.0


def test_file_mode_refuses_deduplicated_units(data, tmp_path):
    units = {u: dedup(c) for u, c in perfect_units(data).items()}
    write_units(tmp_path / "dedup.txt", units)
    with pytest.raises(DataError, match="deduplicated"):
        evaluate_units_file(tmp_path / "dedup.txt", 100, data["test"], exp_dir=tmp_path,
                            progress=False)


def test_file_mode_refuses_a_wrong_frame_rate(data, tmp_path):
    write_units(tmp_path / "units.txt", perfect_units(data))
    with pytest.raises(DataError, match="frame rate is wrong"):
        evaluate_units_file(tmp_path / "units.txt", 50, data["test"], exp_dir=tmp_path,
                            progress=False)


def test_table_rows_and_percentages(fitted):
    result, _ = fitted
    lines = format_units_table(result).splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:7]}
    assert set(rows) == set(SYSTEMS)
    acc = result["units"]["test"]["vqvae"]["mapping_accuracy"]
    assert rows["vqvae"][0] == f"{100 * acc:.1f}"


def test_a_dump_scores_like_its_data_dir(fitted, data, tmp_path):
    from speechvq.data.speech.dump import dump_data_dir

    dumps = {s: dump_data_dir(data[s], tmp_path / s, progress=False) for s in ("test", "train")}
    result = evaluate_units_model(data["exp"], dumps["test"], fit_on=dumps["train"],
                                  exp_dir=tmp_path / "exp", progress=False)
    mine, ref = result["units"]["test"], fitted[0]["units"]["test"]
    # the dump stores 16-bit sources losslessly (int16 / 32768, as libsndfile reads them), so
    # every system scores exactly as on the Kaldi dir
    for system in SYSTEMS:
        for metric in METRICS:
            assert mine[system][metric] == pytest.approx(ref[system][metric], rel=1e-9)
    assert mine["vqvae"]["n_frames"] == ref["vqvae"]["n_frames"]
    assert mine["fit_on"] == str(dumps["train"])
