"""`speechvq encode --format km`: the fairseq ``.km`` and, beside it, its wav2vec manifest
(``<stem>.tsv``: root line, then ``relative_path<TAB>n_samples``, in the ``.km`` order)."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechvq import cli
from speechvq.data.codes import manifest_path, write_manifest
from speechvq.data.speech.kaldi import DataDir
from speechvq.encode import encode_to_file
from speechvq.errors import DataError

HOP = 160  # the eval corpus model's samples per code


def read_manifest(path):
    root, *rows = path.read_text().splitlines()
    return root, [(rel, int(n)) for rel, n in (r.split("\t") for r in rows)]


def test_manifest_root_is_the_common_folder_and_order_is_kept(tmp_path):
    files = [(tmp_path / "b" / "x.wav", 5), (tmp_path / "a" / "sub" / "y.wav", 7)]
    write_manifest(tmp_path / "u.tsv", files)
    assert (tmp_path / "u.tsv").read_text() == f"{tmp_path}\nb/x.wav\t5\na/sub/y.wav\t7\n"
    assert manifest_path(tmp_path / "units" / "train.km") == tmp_path / "units" / "train.tsv"
    with pytest.raises(DataError, match="tab or a line break"):
        write_manifest(tmp_path / "v.tsv", [(tmp_path / "a\tb.wav", 1)])
    with pytest.raises(DataError, match=r"manifest is <stem>\.tsv beside it"):
        manifest_path(tmp_path / "units.tsv")


def test_km_and_manifest_from_a_data_dir_and_from_its_dump(eval_corpus, tmp_path, capsys):
    exp, test = eval_corpus["exp"], eval_corpus["test"]
    km = tmp_path / "units" / "test.km"
    codes = encode_to_file(exp, test, km, fmt="km", batch_size=4, progress=False)
    root, rows = read_manifest(tmp_path / "units" / "test.tsv")
    lines = km.read_text().splitlines()
    assert root == str(test / "wav") and len(rows) == len(lines) == len(codes)
    d = DataDir.load(test)
    for (rel, n), utt, line in zip(rows, codes, lines):  # the same order, utterance by utterance
        assert rel == f"{utt}.wav" and n == sf.info(d.audio_source(utt)[0]).frames
        assert line == " ".join(map(str, codes[utt])) and len(codes[utt]) == math.ceil(n / HOP)

    dump = tmp_path / "dump"
    assert cli.main(["dump", str(test), str(dump)]) == 0
    assert cli.main(["encode", "--model", str(exp), "--data", str(dump), "--out",
                     str(tmp_path / "d.km"), "--format", "km", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'd.tsv'}: their audio files (wav2vec manifest, same order)" in out
    assert (tmp_path / "d.tsv").read_text() == (tmp_path / "units" / "test.tsv").read_text()
    assert (tmp_path / "d.km").read_text() == km.read_text()
    shutil.rmtree(dump)  # a dump whose source dir is gone has no files to list


def test_segments_and_lost_sources_are_refused_before_encoding(eval_corpus, tmp_path):
    exp, test = eval_corpus["exp"], eval_corpus["test"]
    d = DataDir.load(test)
    rec = sorted(d.wav_scp)[0]
    seg = DataDir(path=None, wav_scp={rec: d.wav_scp[rec]},
                  utt2spk={f"{rec}_a": d.utt2spk[rec], f"{rec}_b": d.utt2spk[rec]},
                  segments={f"{rec}_a": (rec, 0.0, 0.2), f"{rec}_b": (rec, 0.2, 0.4)})
    seg.save(tmp_path / "seg")
    with pytest.raises(DataError, match=r"cuts utterances from recordings \(segments\)"):
        encode_to_file(exp, tmp_path / "seg", tmp_path / "s.km", fmt="km", progress=False)
    assert not (tmp_path / "s.km").exists() and not (tmp_path / "s.tsv").exists()
    encode_to_file(exp, tmp_path / "seg", tmp_path / "s.txt", progress=False)  # kaldi: fine

    src = tmp_path / "moved"
    shutil.copytree(test, src)
    assert cli.main(["dump", str(src), str(tmp_path / "dump")]) == 0
    shutil.rmtree(src)
    with pytest.raises(DataError, match=r"source data dir .* is gone; pass the Kaldi data dir"):
        encode_to_file(exp, tmp_path / "dump", tmp_path / "m.km", fmt="km", progress=False)


def test_files_at_another_rate_than_the_model_are_named(eval_corpus, tmp_path):
    wav = tmp_path / "spk1_x.wav"
    sf.write(wav, np.zeros(800, np.float32) + 0.01, 8000)
    DataDir(path=None, wav_scp={"spk1_x": str(wav)}, utt2spk={"spk1_x": "spk1"}).save(
        tmp_path / "d8k")
    with pytest.warns(UserWarning, match=r"files are at 8000 Hz, the units at 16000 Hz"):
        encode_to_file(eval_corpus["exp"], tmp_path / "d8k", tmp_path / "u.km", fmt="km",
                       progress=False)
    assert read_manifest(tmp_path / "u.tsv")[1] == [("spk1_x.wav", 800)]
    assert len((tmp_path / "u.km").read_text().split()) == 10  # 1600 samples at 16 kHz
