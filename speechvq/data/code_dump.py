"""The code dump: a trained VQ-VAE's codes of every item of a split, what a prior trains on.

``speechvq encode --codes-out DIR`` writes one folder per split (DESIGN.md "Data on disk", as
nanoGPT's token file):

- ``codes.npy``: (N,) uint16, every item's codes one after another (an image's H x W grid in
  raster order, an utterance's frames in time order), opened with ``np.load(mmap_mode="r")``;
- ``index.tsv``: ``id<TAB>offset<TAB>shape<TAB>condition`` per item, in id order; shape is
  ``HxW`` (images) or ``T`` (speech), condition the item's label or speaker (a name of
  ``conditions.txt``);
- ``conditions.txt``: the class names (image) or speakers (speech) of the VQ-VAE, one per line;
  the line number (from 0) is the condition index a prior is given;
- ``codes.json``: format version, ``modality`` (image or speech), ``codebook_size`` K, ``grid``
  ([H, W] for images, null for speech) or ``frame_rate_hz`` (speech), the VQ-VAE checkpoint as
  ``vqvae.path`` (relative to the dump folder) and ``vqvae.sha256``, the data it encoded, and the
  SHA-256 of every other file (``checksums``; `CodeDump.verify`).

`write_code_dump` builds it in ``OUT.tmp`` and renames it when complete, so a stopped encode
leaves no half dump (`speechvq.data.dump_folder`, as every array dump). No pickle anywhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from speechvq.checksums import file_checksums, verify
from speechvq.data.dump_folder import write_dump_folder
from speechvq.errors import DataError

__all__ = ["CODE_DUMP_VERSION", "CodeDump", "CodeItem", "write_code_dump", "file_sha256",
           "held_out_split"]

CODE_DUMP_VERSION = 1  # bump when the files or their meaning change
INDEX_HEADER = "id\toffset\tshape\tcondition\n"
MAX_CODES = 2 ** 16  # uint16 holds K up to 65,536
_REMAKE = "remove it and run `speechvq encode ... --codes-out` again"


def file_sha256(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of the file at `path` (`speechvq.checksums.file_checksums`)."""
    path = Path(path)
    digest = file_checksums(path.parent, [path.name]).get(path.name)
    if digest is None:
        raise DataError(f"'{path}' does not exist or is not a file")
    return digest


@dataclass(frozen=True)
class CodeItem:
    """One item to write: its id, its codes ((H, W) or (T,) ints) and its condition name."""

    id: str
    codes: np.ndarray
    condition: str


def write_code_dump(out: str | os.PathLike, items: Sequence[CodeItem], *, modality: str,
                    codebook_size: int, conditions: Sequence[str], checkpoint: str | os.PathLike,
                    source: str | os.PathLike, grid: Sequence[int] | None = None,
                    frame_rate_hz: float | None = None) -> "CodeDump":
    """Write the code dump folder `out` (built as ``OUT.tmp``, renamed when complete; an old
    `out` is replaced: the caller holds its claim).

    Args:
        items: the items, any order (written sorted by id). modality: 'image' or 'speech'.
        codebook_size: K. conditions: every class or speaker name of the VQ-VAE.
        checkpoint: the VQ-VAE checkpoint the codes came from (recorded relative to `out`).
        source: the data that was encoded. grid: [H, W] of images. frame_rate_hz: of speech.
    Returns:
        The dump, opened.
    """
    out = Path(out)
    if not 0 < codebook_size <= MAX_CODES:
        raise DataError(f"a code dump stores codes as uint16, so K must be at most {MAX_CODES}; "
                        f"the model has K = {codebook_size}")
    items = sorted(items, key=lambda it: it.id.encode("utf-8"))
    known = set(conditions)
    rows, offset = [], 0
    for it in items:
        if it.condition not in known:
            raise DataError(f"item {it.id!r} has condition {it.condition!r}, which the model "
                            f"does not know ({', '.join(conditions[:5])}, ...)")
        shape = "x".join(str(int(s)) for s in it.codes.shape)
        rows.append(f"{it.id}\t{offset}\t{shape}\t{it.condition}\n")
        offset += int(it.codes.size)
    codes = np.concatenate([np.asarray(it.codes).reshape(-1) for it in items]) if items else \
        np.zeros(0, np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise DataError(f"codes outside [0, {codebook_size}) in the encoder's output")
    ckpt = Path(checkpoint)
    meta = {"version": CODE_DUMP_VERSION, "modality": modality,
            "codebook_size": int(codebook_size),
            "grid": None if grid is None else [int(g) for g in grid],
            "frame_rate_hz": None if frame_rate_hz is None else float(frame_rate_hz),
            "vqvae": {"path": os.path.relpath(os.path.abspath(ckpt), os.path.abspath(out)),
                      "sha256": file_sha256(ckpt)},
            "source": str(source), "n_items": len(items), "n_codes": int(codes.size)}
    write_dump_folder(out, arrays={"codes.npy": codes.astype(np.uint16)},
                      texts={"index.tsv": INDEX_HEADER + "".join(rows),
                             "conditions.txt": "".join(f"{c}\n" for c in conditions)},
                      meta_file="codes.json", meta=meta, replace=True)
    return CodeDump.open(out)


class CodeDump:
    """An opened code dump (see the module docstring); the codes stay memory-mapped.

    Attributes:
        path: the folder. meta: codes.json. codebook_size: K. modality: 'image' or 'speech'.
        grid: (H, W) of every image, or None (speech). ids: item ids in index order.
        offsets, lengths: (N,) int64 into `codes`. shapes: each item's shape.
        condition_ids: (N,) int64 into `conditions`. conditions: class or speaker names.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        p = self.path
        if not (p / "codes.json").is_file():
            tmp = p.with_name(p.name + ".tmp")
            hint = f" ('{tmp}' is a stopped encode: run it again)" if tmp.is_dir() else ""
            raise DataError(f"'{p}' is not a code dump (no codes.json){hint}; make one with "
                            f"`speechvq encode --model VQVAE --data DATA --codes-out {p}`")
        try:
            self.meta = json.loads((p / "codes.json").read_text(encoding="utf-8"))
            self.conditions = (p / "conditions.txt").read_text(encoding="utf-8").splitlines()
            lines = (p / "index.tsv").read_text(encoding="utf-8").splitlines()
            self.codes = np.load(p / "codes.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise self._fail(f"unreadable ({e})") from None
        if self.meta.get("version") != CODE_DUMP_VERSION:
            raise self._fail(f"format version {self.meta.get('version')!r}, this speechvq reads "
                             f"{CODE_DUMP_VERSION}")
        if self.codes.dtype != np.uint16 or self.codes.ndim != 1:
            raise self._fail(f"codes.npy holds {self.codes.dtype} {self.codes.shape}, not uint16 "
                             f"(N,)")
        self.codebook_size = int(self.meta["codebook_size"])
        self.modality = str(self.meta["modality"])
        self.grid = tuple(self.meta["grid"]) if self.meta.get("grid") else None
        cond_index = {c: i for i, c in enumerate(self.conditions)}
        ids, offsets, shapes, conds = [], [], [], []
        if not lines or lines[0] + "\n" != INDEX_HEADER:
            raise self._fail("index.tsv lacks its header line")
        for n, line in enumerate(lines[1:], 2):
            fields = line.split("\t")
            try:
                item, offset, shape, cond = fields
                shapes.append(tuple(int(s) for s in shape.split("x")))
                offsets.append(int(offset))
                conds.append(cond_index[cond])
            except (ValueError, KeyError):
                raise self._fail(f"index.tsv line {n} is not `id offset shape condition` with a "
                                 f"condition of conditions.txt: {line[:80]!r}") from None
            ids.append(item)
        self.ids, self.shapes = ids, shapes
        self.offsets = np.asarray(offsets, np.int64)
        self.lengths = np.asarray([int(np.prod(s)) for s in shapes], np.int64)
        self.condition_ids = np.asarray(conds, np.int64)
        if int(self.lengths.sum()) != self.codes.shape[0] or (
                len(ids) and not np.array_equal(self.offsets[1:], np.cumsum(self.lengths)[:-1])):
            raise self._fail(f"index.tsv covers {int(self.lengths.sum())} codes, codes.npy holds "
                             f"{self.codes.shape[0]}: one of them is truncated")
        if not ids:
            raise self._fail("it holds no items")

    @classmethod
    def open(cls, path: str | os.PathLike) -> "CodeDump":
        """Open and check the dump at `path` (DataError on anything inconsistent)."""
        return cls(path)

    def _fail(self, what: str) -> DataError:
        return DataError(f"code dump '{self.path}': {what}; {_REMAKE}")

    def __len__(self) -> int:
        return len(self.ids)

    def item(self, i: int) -> np.ndarray:
        """Codes of item `i` in its own shape, int64."""
        a = int(self.offsets[i])
        return np.asarray(self.codes[a:a + int(self.lengths[i])], np.int64).reshape(self.shapes[i])

    @property
    def checkpoint(self) -> Path:
        """The VQ-VAE checkpoint the codes came from (resolved against the dump folder)."""
        return (self.path / self.meta["vqvae"]["path"]).resolve()

    def check_checkpoint(self) -> Path:
        """`checkpoint`, refused when it is gone or its bytes differ from the encoded one's.

        Raises:
            DataError: naming the checkpoint and the fix.
        """
        ckpt = self.checkpoint
        if not ckpt.is_file():
            raise DataError(f"the VQ-VAE checkpoint '{ckpt}' of code dump '{self.path}' is gone; "
                            f"restore it, or encode again with the model you have")
        if file_sha256(ckpt) != self.meta["vqvae"]["sha256"]:
            raise DataError(f"the VQ-VAE checkpoint '{ckpt}' changed since code dump "
                            f"'{self.path}' was encoded (its SHA-256 differs): the codes no "
                            f"longer match it; encode again")
        return ckpt

    def verify(self) -> bool:
        """Compare every file with the checksum recorded when the dump was made.

        Raises:
            DataError: a file differs or is missing.
        """
        return verify(self.path, self.meta.get("checksums"), self._fail)


def held_out_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (train, held-out) split of items 0..n-1: a `fraction` of them (at least
    one when n > 1, drawn from `seed`) held out; both sorted, int64."""
    n_held = 0 if n < 2 or fraction <= 0 else min(n - 1, max(1, round(n * fraction)))
    order = np.random.default_rng([seed, 0x9E1D]).permutation(n)
    return np.sort(order[n_held:]).astype(np.int64), np.sort(order[:n_held]).astype(np.int64)
