"""What a report needs before it goes into a paper: the version, commit and folder behind every
number, the convert commands behind the wavs, every training run in the model's chain, the data
called what it is, ``n/a`` where nothing could be computed, and CSV / LaTeX tables."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from speechvq import __version__
from speechvq.convert import convert_data
from speechvq.data.builtin.corpus import README_TITLE
from speechvq.evaluation.report import make_report
from speechvq.evaluation.report.core import format_number
from speechvq.evaluation.report.speech import describe_data
from speechvq.evaluation.report.tables import Table, abbreviations, export_table
from speechvq.evaluation.results import write_result
from speechvq.models.outputs import Metric
from speechvq.provenance import git_commit, read_runs, run_info


def test_results_and_training_runs_record_folder_version_and_commit(tmp_path):
    result = {"units": {"x": {}}, "command": "speechvq evaluate units"}
    path = write_result(tmp_path, "units", "x", result)
    saved = json.loads(path.read_text())
    assert saved["cwd"] == os.getcwd() and saved["speechvq_version"] == __version__
    assert saved["git_commit"] == git_commit() != ""
    (tmp_path / "cmdline.txt").write_text(
        "# 2024-01-01 00:00:00\nspeechvq train --exp old\n# speechvq 0.0.9, git commit abc, "
        "python 3.10\n# torch==2.11.0\n" + run_info(["speechvq", "train", "--exp", "new"]))
    old, new = read_runs(tmp_path / "cmdline.txt")
    assert old == {"command": "speechvq train --exp old", "cwd": None,
                   "speechvq_version": "0.0.9", "git_commit": "abc"}
    assert new == {"command": "speechvq train --exp new", "cwd": os.getcwd(),
                   "speechvq_version": __version__, "git_commit": git_commit()}


def test_conversion_dir_records_the_convert_command_but_keeps_wavs_across_folders(
        eval_corpus, tmp_path, monkeypatch, capsys):
    exp, out = eval_corpus["exp"], tmp_path / "conv"
    import soundfile as sf  # one 0.1 s source, so that the WaveNet samples little

    from speechvq.data.speech.kaldi import DataDir
    sf.write(tmp_path / "spk1_x.wav", sf.read(eval_corpus["test"] / "wav" / "spk1_s4.wav")[0][
        :1600], 16000)
    test = DataDir(path=None, wav_scp={"spk1_x": str(tmp_path / "spk1_x.wav")},
                   utt2spk={"spk1_x": "spk1"}).save(tmp_path / "src")
    convert_data(exp, test, ["spk2"], out, head="wavenet", max_utts=1, progress=False)
    stamp = json.loads((out / "conversion.json").read_text())
    assert stamp["command"] == (f"speechvq convert --model {exp} --data {test} --speakers spk2 "
                                f"--max-utts 1 --head wavenet --temperature 1.0 --seed 0 "
                                f"--batch-size 8 --out {out}")
    assert stamp["cwd"] == os.getcwd() and stamp["git_commit"] == git_commit()
    monkeypatch.chdir(tmp_path)  # the same conversions from another folder: nothing redone
    convert_data(exp, test, ["spk2"], out, head="wavenet", max_utts=1, progress=False)
    assert "1 of 1 conversions already in" in capsys.readouterr().out
    assert json.loads((out / "conversion.json").read_text())["cwd"] == str(tmp_path)


def exp_dir(root, name, eval_corpus, *, init_from="", freeze=(), cwd=None, steps=(10, 20)):
    """A copy of the eval corpus's exp at root/exp/name, with its own log and train section."""
    exp = root / "exp" / name
    shutil.copytree(eval_corpus["exp"], exp)
    cfg = yaml.safe_load((exp / "config.yaml").read_text())
    cfg["train"].update(init_from=init_from, freeze=list(freeze))
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    block = run_info(["speechvq", "train", "--data", f"dump/{name}", "--exp", f"exp/{name}"])
    if cwd is None:  # as an older speechvq wrote it: no folder
        block = "".join(ln for ln in block.splitlines(True) if not ln.startswith("# cwd"))
    else:
        block = block.replace(f"# cwd {os.getcwd()}", f"# cwd {cwd}")
    (exp / "cmdline.txt").write_text(block)
    (exp / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "loss": 1.0 / s, "step_time": 0.1}) + "\n" for s in steps))
    return exp


def test_report_follows_init_from_through_the_chain_of_trainings(eval_corpus, tmp_path):
    root = tmp_path / "recipe"
    exp_dir(root, "codes", eval_corpus, steps=(100, 5000))
    exp = exp_dir(root, "wavenet", eval_corpus, init_from="exp/codes", cwd=root,
                  freeze=("encoder", "quantizer"), steps=(250, 500))
    md = make_report(exp).read_text()
    report = json.loads((exp / "report" / "report.json").read_text())
    (chain,) = report["training_chain"]
    assert chain["exp"] == str(root / "exp" / "codes") and chain["init_from"] == "exp/codes"
    assert chain["training"]["steps"] == 5000 and report["training"]["steps"] == 500
    codes_src = report["sources"]["training_chain.0"]
    assert codes_src["command"] == "speechvq train --data dump/codes --exp exp/codes"
    assert report["sources"]["training"]["frozen"] == ["encoder", "quantizer"]
    assert "Initialised from `exp/codes` (`train.init_from`; its training follows), with " \
           "encoder, quantizer frozen" in md
    assert "## Training of `exp/codes`, which" in md and "| steps | 5000 |" in md
    assert f"`speechvq train --data dump/wavenet --exp exp/wavenet` in `{root}`" in md
    assert "![training_curves_1.png](training_curves_1.png)" in md
    assert (exp / "report" / "training_curves_1.png").stat().st_size > 5000

    # no recorded folder (an older run): found beside the exp dir; a lost one is named
    old = exp_dir(root, "old", eval_corpus, init_from="exp/codes")
    make_report(old)
    assert json.loads((old / "report" / "report.json").read_text())[
        "training_chain"][0]["exp"] == str(root / "exp" / "codes")
    lost = exp_dir(root, "lost", eval_corpus, init_from="exp/gone", cwd=root)
    text = make_report(lost).read_text()
    assert "## Training of `exp/gone`" in text and "Not found (looked for `exp/gone` under " \
                                                    f"`{root}`" in text
    assert json.loads((lost / "report" / "report.json").read_text())["training_chain"] == [
        {"exp": None, "init_from": "exp/gone", "training": {}}]


def test_data_is_described_as_what_it_is(eval_corpus, tmp_path):
    corpus = tmp_path / "data"
    shutil.copytree(eval_corpus["test"], corpus / "test")
    (corpus / "README.md").write_text(f"{README_TITLE} (tiny, seed 0)\n")
    test = describe_data(corpus / "test")
    assert test["kind"] == "builtin" and test["what"] == (
        "the built-in corpus, split `test`: synthetic speech (eSpeak NG formant synthesis, not "
        "recordings), 8 utterances by 3 speakers")
    dump = tmp_path / "dump"
    dump.mkdir()
    (dump / "dump.json").write_text(json.dumps({"source": str(corpus / "test"),
                                                "sample_rate": 16000}))
    shutil.copy(corpus / "test" / "utt2spk", dump / "utt2spk")
    assert describe_data(dump)["what"] == f"a dump (8 utterances at 16000 Hz) of {test['what']}"
    other = describe_data(eval_corpus["train"])
    assert other["kind"] == "kaldi" and "synthetic" not in other["what"]


def test_conversion_section_names_the_convert_command_and_n_a(eval_corpus, tmp_path,
                                                              monkeypatch):
    exp = tmp_path / "exp"
    shutil.copytree(eval_corpus["exp"], exp)
    conv = tmp_path / "conv"
    shutil.copytree(eval_corpus["conv"], conv)
    stamp = {"command": "speechvq convert --model exp --data data/test --out conv",
             "cwd": str(tmp_path), "speechvq_version": __version__, "git_commit": "abc"}
    (conv / "conversion.json").write_text(json.dumps(stamp))
    metrics = {"speaker_id_heldout_accuracy": 1.0, "speaker_id_target": None,
               "speaker_id_source": 0.5, "n_converted": 5, "n_targets_unknown_to_classifier": 5}
    here = os.getcwd()
    monkeypatch.chdir(tmp_path)  # the evaluation ran there: "conv" is relative to it
    write_result(exp, "conversion", "x", {"conversion": {"x": metrics},
                                          "command": "speechvq evaluate conversion",
                                          "data": {"converted": "conv"}})
    monkeypatch.chdir(here)
    md = make_report(exp).read_text()
    report = json.loads((exp / "report" / "report.json").read_text())
    assert report["sources"]["conversion.x"]["convert"]["command"] == stamp["command"]
    assert report["datasets"]["conv"]["kind"] == "conversion"
    assert f"The converted wavs were made by `{stamp['command']}` in `{tmp_path}` (speechvq " \
           f"{__version__}, git commit abc)." in md
    assert "| converted files identified as the target | n/a | n/a | 5 files, 5 to targets the " \
           "classifier does not know (not scored) |" in md
    assert "| x | 100.0 | n/a | 50.0 |" in md  # the table of all conversion sets
    assert not re.search(r"(?<![\d.])0\.0 %", md)  # nothing uncomputable shown as 0 %


def test_speaker_id_scores_only_targets_the_classifier_knows(monkeypatch):
    from speechvq.evaluation.speech import conversion_speaker as cs
    from speechvq.evaluation.speech.conversion_pairs import Pair

    monkeypatch.setattr(cs, "speaker_features", lambda wav, cfg: wav)  # "audio" = features
    voices = {"spkA": [0.0, 1.0], "spkB": [1.0, 0.0]}
    rng = np.random.default_rng(0)

    def data(name, utts):
        return SimpleNamespace(path=name, utts=list(utts), speaker=lambda u: u.split("_")[0],
                               waveform=lambda u: np.array(voices[utts[u]]) +
                               0.05 * rng.standard_normal(2))

    real = data("real", {f"{s}_{i}": s for s in voices for i in range(6)})
    sets = cs.ClassifierSets(real, real.utts[:4] + real.utts[6:10], real,
                             real.utts[4:6] + real.utts[10:], "split")
    conv = SimpleNamespace(data=data("conv", {"spkC-1": "spkB", "spkA-2": "spkA",
                                              "spkC-3": "spkA"}),
                           pairs=[Pair("spkC-1", "spkA_0", "spkC", "spkA"),
                                  Pair("spkA-2", "spkB_0", "spkA", "spkB"),
                                  Pair("spkC-3", "spkB_1", "spkC", "spkB")])
    metrics, _ = cs.SpeakerID(None).score(sets, conv, progress=False)
    assert metrics["speaker_id_heldout_accuracy"] == 1.0
    assert metrics["speaker_id_target"] == 1.0  # the one conversion to a known target
    assert metrics["n_targets_unknown_to_classifier"] == 2
    conv = SimpleNamespace(data=conv.data, pairs=[p for p in conv.pairs if p.target == "spkC"])
    assert cs.SpeakerID(None).score(sets, conv, progress=False)[0]["speaker_id_target"] is None
    assert format_number(None) == Metric("x", "x", fmt="%").show(None) == "n/a"


def test_tables_export_the_cells_they_show_as_csv_and_latex(tmp_path):
    cols = [Metric("phone_purity", "phone purity", short="ph pur"),
            Metric("pnmi", "PNMI", short="PNMI")]
    t = Table("units_test", "Units on test_set", ["system", "ph pur", "PNMI"],
              [["vqvae", "57.4", "59.5"], ["mfcc_k&means", "n/a", "54.4"]], strong={0},
              notes=["Percentages (100 % = all).", abbreviations(cols)])
    md = export_table(tmp_path, t)
    assert md[:3] == ["| system | ph pur | PNMI |", "|---|---:|---:|",
                      "| **vqvae** | 57.4 | 59.5 |"]
    assert "Abbreviations: ph pur = phone purity." in md
    rows = list(csv.reader(io.StringIO((tmp_path / "tables" / "units_test.csv").read_text())))
    assert rows == [t.columns, *t.rows]
    tex = (tmp_path / "tables" / "units_test.tex").read_text()
    assert r"\caption{Units on test\_set. Percentages (100 \% = all). Abbreviations: ph pur = " \
           r"phone purity.}" in tex
    assert r"\textbf{vqvae} & 57.4 & 59.5 \\" in tex and r"mfcc\_k\&means & n/a & 54.4 \\" in tex
    assert r"\begin{tabular}{lrr}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
