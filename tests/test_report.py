"""`speechvq report`: report.md, report.json and the figures, from real evaluation outputs."""

from __future__ import annotations

import json
import shutil

import pytest

from speechvq import cli
from speechvq.errors import DataError
from speechvq.evaluation.speech.conversion import evaluate_conversion
from speechvq.evaluation.report import make_report, training_summary
from speechvq.evaluation.report.speech import baseline_wins
from speechvq.evaluation.speech.unit_eval import evaluate_units_model
from speechvq.ownership import MARKER

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def reported(eval_corpus, tmp_path_factory):
    data = eval_corpus
    exp = tmp_path_factory.mktemp("report") / "exp"
    shutil.copytree(data["exp"], exp)
    units = evaluate_units_model(exp, data["test"], fit_on=data["train"], abx_max_triplets=50,
                                 progress=False)
    conv = evaluate_conversion(data["conv"], data["test"], exp, train=data["train"],
                               name="test_mel", progress=False)
    return exp, make_report(exp), units, conv


def test_report_files_and_figures_exist(reported):
    exp, md, _, _ = reported
    assert md == exp / "report" / "report.md"
    for name in ("training_curves", "code_usage_test", "cooccurrence_test",
                 "spectrograms_test_mel"):
        png = exp / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG and png.stat().st_size > 5000, name
        assert f"![{name}.png]({name}.png)" in md.read_text()
    assert [p.name for p in (exp / "report").glob(".*")] == [MARKER]  # no temp files left


def test_report_json_numbers_equal_the_evaluations(reported):
    exp, _, units, conv = reported
    report = json.loads((exp / "report" / "report.json").read_text())
    assert report["units"]["test"] == units["units"]["test"]
    assert report["conversion"]["test_mel"] == conv["conversion"]["test_mel"]
    for system in ("vqvae", "majority", "random", "mfcc_kmeans"):
        assert set(report["units"]["test"][system]) >= {
            "mapping_accuracy", "mapping_accuracy_nosil", "phone_purity", "cluster_purity",
            "pnmi", "bitrate_bps"}
    assert report["sources"]["units.test"]["command"] == units["command"]
    assert report["sources"]["conversion.test_mel"]["data"] == conv["data"]
    t = report["training"]
    assert t["steps"] == 20 and t["loss"] == pytest.approx(3.0)
    assert t["wall_time_s"] == pytest.approx(10.0)  # 10 steps x 0.5 s, twice
    assert report["sources"]["training"]["data"] == "dump/train"


def test_report_markdown_tables(reported):
    _, md, units, _ = reported
    text = md.read_text()
    block = units["units"]["test"]
    acc = f"{100 * block['vqvae']['mapping_accuracy']:.1f}"
    assert f"| **vqvae** | {acc} |" in text
    for system in ("majority", "random", "mfcc_kmeans"):
        assert f"| {system} |" in text
    # the MFCC baseline wins on this untrained model, and the report says so
    assert "mfcc_kmeans beats vqvae on mapping_accuracy" in text
    assert "speaker-ID accuracy on held-out unconverted audio | 100.0 % | 100.0–100.0 |" in text
    assert units["command"] in text
    # the 95 % intervals, with the n behind them
    lo, hi = block["vqvae"]["ci95"]["mapping_accuracy"]
    assert f"| vqvae | {100 * lo:.1f}–{100 * hi:.1f} |" in text
    assert f"resamples of the {block['vqvae']['n_utterances']} scored utterances" in text


def test_main_tables_as_csv_and_latex_and_the_report_s_own_source(reported):
    import csv

    exp, md, units, _ = reported
    text, out = md.read_text(), exp / "report"
    header = next(ln for ln in text.splitlines() if ln.startswith("| system | map acc"))
    rows = list(csv.reader((out / "tables" / "units_test.csv").open()))
    assert " | ".join(rows[0]) == header.strip("| ")
    acc = units["units"]["test"]["vqvae"]["mapping_accuracy"]
    assert rows[1][:2] == ["vqvae", f"{100 * acc:.1f}"]
    assert "ph pur = phone purity; cl pur = cluster purity" in text
    for name in ("units_test", "conversion", "conversion_test_mel"):
        assert r"\toprule" in (out / "tables" / f"{name}.tex").read_text(), name
        assert f"[tables/{name}.csv](tables/{name}.csv)" in text
    src = json.loads((out / "report.json").read_text())["sources"]["report"]
    assert src["command"] == f"speechvq report --exp {exp}" and src["cwd"] and src["git_commit"]
    assert f"by `speechvq report --exp {exp}` in `{src['cwd']}`" in text


def test_baseline_wins_and_training_summary_by_hand():
    block = {"vqvae": {"mapping_accuracy": 0.5, "abx_within": 0.1, "pnmi": 0.3},
             "random": {"mapping_accuracy": 0.2, "abx_within": 0.5, "pnmi": 0.0},
             "mfcc_kmeans": {"mapping_accuracy": 0.6, "abx_within": 0.05, "pnmi": 0.2}}
    assert baseline_wins(block) == ["mfcc_kmeans beats vqvae on mapping_accuracy (60.0 % vs "
                                    "50.0 %), abx_within (5.0 % vs 10.0 %)"]
    rows = [{"step": 50, "loss": 2.0, "step_time": 0.1}, {"step": 60, "loss": 1.5,
                                                          "step_time": 0.2}]
    assert training_summary(rows) == {"loss": 1.5, "step_time": 0.2, "steps": 60,
                                      "wall_time_s": 7.0}


def test_every_number_the_evaluations_write_has_a_definition(reported):
    """A field the evaluations add without a definition would show under its bare name."""
    from speechvq.evaluation.speech.metrics import DEFINED_CONVERSION, DEFINED_UNITS

    _, _, units, conv = reported
    for block in units["units"].values():
        for system in (s for s in block if isinstance(block[s], dict)):
            assert set(block[system]) - set(DEFINED_UNITS) == set(), system
        assert {k for k in block if not isinstance(block[k], dict)} <= set(DEFINED_UNITS)
    for block in conv["conversion"].values():
        assert set(block) - set(DEFINED_CONVERSION) == set()


def test_new_metric_and_unknown_eval_kind_reach_the_report(tmp_path):
    """A field added to metrics.jsonl or to a result, and a result of a kind no renderer knows,
    are reported without editing any list of names."""
    exp = tmp_path / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "metrics.jsonl").write_text(
        '{"step": 5, "loss": 2.0, "brand_new": 0.5, "flag": true}\n'
        '{"step": 10, "loss": 1.0, "brand_new": 0.25, "note": "text"}\n')
    (exp / "eval" / "fid_test.json").write_text(json.dumps(
        {"fid": {"test": {"vqvae": {"fid": 12.5, "n": 100}, "name": "x"}},
         "command": "speechvq evaluate fid", "data": "data/test"}))
    (exp / "eval" / "bare.json").write_text(json.dumps({"score": 0.75, "command": "c"}))
    (exp / "eval" / "units_extra.json").write_text(json.dumps(
        {"units": {"extra": {"frame_rate_hz": 50.0, "codebook_size": 4, "n_phones": 2,
                             "fit_on": "eval",
                             "vqvae": {"mapping_accuracy": 0.5, "new_unit_metric": 3.0},
                             "random": {"mapping_accuracy": 0.25, "new_unit_metric": 1.0}}},
         "command": "speechvq evaluate units"}))
    md = make_report(exp).read_text()
    report = json.loads((exp / "report" / "report.json").read_text())
    assert report["training"] == {"loss": 1.0, "brand_new": 0.25, "steps": 10,
                                  "wall_time_s": None}
    assert "| brand_new | 0.25 |" in md and "| total loss | 1 |" in md
    assert report["fid"]["test"] == {"vqvae": {"fid": 12.5, "n": 100}, "name": "x"}
    assert report["sources"]["fid.test"]["command"] == "speechvq evaluate fid"
    assert "## fid: test" in md and "| vqvae.fid | 12.5 |" in md and "| vqvae.n | 100 |" in md
    assert report["bare"]["bare"] == {"score": 0.75} and "| score | 0.75 |" in md
    assert "| system | map acc | new_unit_metric |" in md and "| **vqvae** | 50.0 | 3 |" in md


def test_report_core_knows_no_task_and_a_task_without_renderer_is_listed(tmp_path):
    import subprocess
    import sys

    code = ("import sys, speechvq.evaluation.report as r; "
            "print(sorted(m for m in sys.modules if '.speech' in m or m.endswith('.config')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    (tmp_path / "config.yaml").write_text("task: tagging\n")  # a task with no renderer
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "tagging_test.json").write_text(json.dumps(
        {"tagging": {"test": {"model": {"map": 20.5}}}, "command": "speechvq evaluate"}))
    md = make_report(tmp_path).read_text()
    assert "## tagging: test" in md and "| model.map | 20.5 |" in md
    assert "No metrics.jsonl" in md and "units" not in json.loads(
        (tmp_path / "report" / "report.json").read_text())


def test_result_claiming_the_training_block_is_refused(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "training_x.json").write_text("{}")
    with pytest.raises(DataError, match="training_x.json: 'training' is the report's own"):
        make_report(tmp_path)


def test_cli_report_and_empty_exp(reported, tmp_path, capsys):
    exp = reported[0]
    assert cli.main(["report", "--exp", str(exp)]) == 0
    assert capsys.readouterr().out.strip() == str(exp / "report" / "report.md")
    with pytest.raises(DataError, match="nothing to report"):
        make_report(tmp_path)


def test_units_without_alignments_get_label_free_statistics(eval_corpus, tmp_path):
    import math

    import numpy as np

    from speechvq.data.codes import write_units

    exp = tmp_path / "exp"
    shutil.copytree(eval_corpus["exp"], exp)  # config: K = 16, 100 codes per second
    # two utterances (5 s and 0.5 s): codes 0-3 in runs of 5 frames, then all 16 codes
    units = {"u1": np.tile(np.repeat(np.arange(4), 5), 25), "u2": np.arange(50) % 16}
    write_units(exp / "units" / "vctk.txt", units)
    write_units(exp / "units" / "dedup.txt", units, dedup=True)  # timing lost: left out
    (exp / "units" / "notes.txt").write_text("not units\n")  # left out, with a warning
    write_units(exp / "units" / "other.txt", {"u": np.arange(40) % 20})  # K = 20 > 16
    with pytest.warns(UserWarning) as caught:
        md = make_report(exp).read_text()
    said = " ".join(str(w.message) for w in caught)
    assert "notes.txt left out" in said and "other.txt left out" in said
    block = json.loads((exp / "report" / "report.json").read_text())["units_unscored"]
    assert list(block) == ["vctk"]
    b = block["vctk"]
    flat = np.concatenate(list(units.values()))
    p = np.bincount(flat, minlength=16) / flat.size
    entropy = -sum(x * math.log2(x) for x in p if x > 0)
    assert b["frame_rate_hz"] == 100.0 and b["n_frames"] == 550 and b["codes_used"] == 16
    assert b["perplexity"] == pytest.approx(2 ** entropy)
    assert b["bitrate_bps"] == pytest.approx(550 / 5.5 * entropy)  # symbols per second x H
    assert b["hours"] == pytest.approx(5.5 / 3600)
    runs = np.concatenate([u[np.r_[True, u[1:] != u[:-1]]] for u in units.values()])  # (150,)
    q = np.bincount(runs) / runs.size
    assert runs.size == 150 and b["bitrate_bps_dedup"] == pytest.approx(
        150 / 5.5 * -sum(x * math.log2(x) for x in q if x > 0))
    assert "## Units without alignments: vctk" in md and "| 16 of 16 |" in md
    assert (exp / "report" / "code_usage_vctk.png").read_bytes().startswith(PNG)


def test_units_file_scored_under_another_name_is_not_listed_as_unscored(eval_corpus, tmp_path):
    from speechvq.encode import encode_to_file
    from speechvq.evaluation.speech.unit_eval import evaluate_units_file

    exp = tmp_path / "exp"
    shutil.copytree(eval_corpus["exp"], exp)
    units = exp / "units" / "test.txt"
    encode_to_file(exp, eval_corpus["test"], units, batch_size=1, progress=False)
    evaluate_units_file(units, 100.0, eval_corpus["test"], name="seen", exp_dir=exp,
                        progress=False)  # eval/units_seen.json, from units/test.txt
    make_report(exp)
    report = json.loads((exp / "report" / "report.json").read_text())
    assert "seen" in report["units"] and report["units_unscored"] == {}


def test_speech_step_logs_the_defined_training_metrics():
    """What `speech_step` logs is exactly the names the report labels (STEP_METRICS), detached,
    each the matching field of the model's output."""
    from types import SimpleNamespace

    import torch

    from speechvq.models.speech.outputs import STEP_METRICS
    from speechvq.tasks.speech import speech_step

    names = ("loss", "nll", "bits_per_sample", "vq_loss", "mel_loss", "perplexity", "codes_used")
    t = {k: torch.tensor(float(i), requires_grad=True) for i, k in enumerate(names)}
    out = SimpleNamespace(**t, stats=SimpleNamespace(perplexity=t["perplexity"],
                                                     codes_used=t["codes_used"]))
    loss, logged = speech_step(lambda wav, speaker, length: out,
                               {"wav": None, "speaker": None, "length": None})
    assert loss is t["loss"]
    assert list(logged) == [m.name for m in STEP_METRICS]
    assert all(logged[k].item() == t[k].item() and not logged[k].requires_grad for k in logged)
