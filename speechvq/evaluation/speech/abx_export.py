"""The ZeroSpeech ABX tool's inputs: a ``.item`` file and one ``.npy`` of features per utterance.

`speechvq evaluate units --export-abx DIR` writes the items and features that
`speechvq.evaluation.speech.abx` scores, so that the ZeroSpeech team's own implementation
(PyPI ``zerospeech-libriabx2``, command ``zrc-abx2``; Hallap, Dupoux and Dunbar 2023) can score
them too::

    DIR/NAME/phone-NAME.item            #file onset offset #phone prev-phone next-phone speaker
    DIR/NAME/{encoder,codes,mfcc}/UTT.npy   (T, D) float32, one row per frame
    DIR/NAME/zrc_abx2.sh                the commands, with the frame size

The ``.item`` format is ABXpy's and ZeroSpeech's (a header line, then one token per line, times
in seconds with 6 decimals). The tool's frame i of an utterance is row i of its ``.npy``, centred
on (i + 1/2) / r at r frames per second, which is the frame timing of DESIGN.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from speechvq.evaluation.speech.abx import Item
from speechvq.fileio import atomic_write_text

ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker\n"


def item_file_text(items: list[Item]) -> str:
    """The ``.item`` file of `items` (header + one line per item, in the items' order)."""
    return ITEM_HEADER + "".join(
        f"{it.utt} {it.onset:.6f} {it.offset:.6f} {it.phone} {it.context[0]} {it.context[1]} "
        f"{it.speaker}\n" for it in items)


def zrc_abx2_command(features_dir: str | os.PathLike, item_file: str | os.PathLike,
                     frame_rate_hz: float, out: str | os.PathLike) -> str:
    """The ``zrc-abx2`` command line that scores `features_dir` on `item_file` as speechvq does:
    cosine (angular) distance, within context, within and across speakers."""
    return shlex.join(["zrc-abx2", str(features_dir), str(item_file), "--file_extension", ".npy",
                       "--feature_size", f"{1 / frame_rate_hz:g}", "--distance_mode", "cosine",
                       "--context_mode", "within", "--out", str(out)])


def write_abx_inputs(out_dir: str | os.PathLike, name: str, span: str, items: list[Item],
                     features: Mapping[str, Mapping[str, np.ndarray]],
                     frame_rate_hz: float) -> Path:
    """Write ``OUT_DIR/NAME/`` (see the module docstring), replacing an older one.

    Args:
        out_dir: parent folder; name: the scored data's name; span: the items' span (`SPANS`).
        items: the ABX items; features: feature set (``encoder`` ...) -> utt -> (T, D) frames.
        frame_rate_hz: frames per second of every feature set.
    Returns:
        The written folder. It is built as ``NAME.tmp/`` and renamed when complete.
    """
    final = Path(out_dir) / name
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    item_file = f"{span}-{name}.item"
    atomic_write_text(tmp / item_file, item_file_text(items))
    commands = ["#!/usr/bin/env bash", "# speechvq's ABX inputs, scored by the ZeroSpeech tool "
                "(pip install zerospeech-libriabx2); run from this folder", "set -euo pipefail",
                "mkdir -p scores"]
    for kind, feats in features.items():
        (tmp / kind).mkdir(parents=True)
        for utt, f in feats.items():
            np.save(tmp / kind / f"{utt}.npy", np.asarray(f, dtype=np.float32),
                    allow_pickle=False)
        commands.append(zrc_abx2_command(kind, item_file, frame_rate_hz, f"scores/{kind}"))
    atomic_write_text(tmp / "zrc_abx2.sh", "\n".join(commands) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final
