"""`speechvq convert --data`: restarts keep finished wavs only when they came from the same model
and settings; wavs of earlier calls that the new one does not list are removed."""

from __future__ import annotations

import json

import pytest

from speechvq.convert import convert_data
from speechvq.errors import DataError, OutputError


def test_restart_keeps_only_wavs_of_the_same_model_and_settings(eval_corpus, tmp_path, capsys):
    exp, test, out = eval_corpus["exp"], eval_corpus["test"], tmp_path / "conv"
    kw = dict(head="wavenet", max_utts=1, progress=False)
    first = convert_data(exp, test, ["spk2"], out, **kw)
    (utt,) = first.utt2spk
    wav = out / "wav" / f"{utt}.wav"
    made = wav.stat().st_mtime_ns
    assert json.loads((out / "conversion.json").read_text())["head"] == "wavenet"

    convert_data(exp, test, ["spk2"], out, **kw)  # a restart: nothing to redo
    assert "1 of 1 conversions already in" in capsys.readouterr().out
    assert wav.stat().st_mtime_ns == made

    convert_data(exp, test, ["spk2"], out, seed=1, **kw)  # other settings: afresh
    assert "made by another model, checkpoint or settings" in capsys.readouterr().out
    assert wav.stat().st_mtime_ns != made

    again = convert_data(exp, test, ["spk3"], out, seed=1, **kw)  # other targets
    assert "removed 1 wavs of an earlier call" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "wav").iterdir()) == [f"{u}.wav" for u in again.utt2spk]


def test_parallel_to_error_names_the_option(eval_corpus, tmp_path):
    with pytest.raises(DataError, match="--parallel-to '.*nowhere' is not a folder"):
        convert_data(eval_corpus["exp"], eval_corpus["test"], ["spk2"], tmp_path / "c",
                     parallel_to=tmp_path / "nowhere", progress=False)


def test_out_dirs_convert_did_not_write_are_refused_untouched(eval_corpus, tmp_path):
    import shutil

    exp, test = eval_corpus["exp"], eval_corpus["test"]
    data = tmp_path / "data"
    shutil.copytree(eval_corpus["train"], data)  # a prepared data dir, wavs in data/wav
    before = sorted(p.name for p in (data / "wav").iterdir())
    with pytest.raises(OutputError, match="was not made by `speechvq convert`.*nothing was "
                                          "changed"):
        convert_data(exp, test, ["spk2"], data, head="wavenet", max_utts=1, progress=False)
    with pytest.raises(OutputError, match="is also an input"):
        convert_data(exp, data, ["spk2"], data, head="wavenet", max_utts=1, progress=False)
    assert sorted(p.name for p in (data / "wav").iterdir()) == before
    assert not (data / "conversion.json").exists()
