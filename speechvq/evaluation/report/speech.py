"""The speech task's report: units and conversion tables beside their baselines, and figures.

Renders the blocks `speechvq.evaluation.report.core` gathers from ``eval/units_*.json`` and
``eval/conversion_*.json`` (`speechvq.evaluation.speech.unit_eval`, `.conversion`), in DESIGN.md's
keys ``units.<split>.<system>.<metric>`` and ``conversion.<split>.<metric>``, and adds blocks of
its own: units files in ``EXP/units/`` that have no evaluation (data without phone alignments,
such as VCTK or a `--corpus-dir` run) get the label-free statistics under
``units_unscored.<split>`` (codes used, perplexity and the ZeroSpeech 2019 bitrate, computed here);
``datasets.<path>`` says what each data path the commands read is (the built-in corpus is
synthetic speech; a dump names the data dir it was made from; a conversion dir the `speechvq
convert` command that wrote it, also under ``sources.conversion.<split>.convert``).
Every metric's name, label and better direction come from `speechvq.evaluation.speech.metrics`;
the report says where a baseline (majority phone, random codes, MFCC k-means) beats the model.
The units and conversion tables are also written as CSV and LaTeX (`tables`). Figures
(`speechvq.evaluation.figures`): training curves of every run in the model's chain, sorted code
usage, the code-by-phone co-occurrence and log-mel spectrograms of a few conversions.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from speechvq.errors import DataError
from speechvq.evaluation.report.core import (Gathered, Renderer, figure_links, ran_in,
                                             register_renderer, source_line, training_md)
from speechvq.evaluation.report.runs import locate
from speechvq.evaluation.report.tables import Table, abbreviations, export_table
from speechvq.evaluation.speech.metrics import (BASELINES, BITRATE, BITRATE_DEDUP, CHANCE,
                                                CONVERSION, LOSS_CURVES, SPEAKER_ID_HELDOUT,
                                                TRAINING, UNITS, conversion_rows, unit_columns)
from speechvq.models.outputs import CODEBOOK, CODES_USED, PERPLEXITY

KINDS = ("units", "conversion", "units_unscored", "datasets")
STAMP = "conversion.json"  # what `speechvq convert` leaves in its output dir


# ---------------------------------------------------------------------------- unscored units


def unscored_units(exp: Path, scored: set[str], scored_files: set[str] = frozenset()
                   ) -> dict[str, tuple[dict, list[int], Path]]:
    """Label-free statistics of ``EXP/units/<split>.txt`` files without an evaluation (neither a
    scored split of that name nor the units file of an `evaluate units --units` result).

    Returns:
        split -> (block, code counts (K,), file). The block holds ``frame_rate_hz``,
        ``codebook_size``, ``n_utterances``, ``n_frames``, ``hours``, ``codes_used``,
        ``perplexity``, ``bitrate_bps`` (frame-level units) and ``bitrate_bps_dedup``. Files that
        look deduplicated (their timing is lost), hold units outside [0, K) (another model's) or
        are not units files are left out, with a warning.
    """
    import warnings

    import numpy as np

    from speechvq.config import load_config
    from speechvq.config.speech import code_hop
    from speechvq.data.codes import looks_deduplicated, read_units
    from speechvq.evaluation.speech.units import label_free_units

    files = [p for p in sorted((exp / "units").glob("*.txt"))
             if p.stem not in scored and str(p.resolve()) not in scored_files]
    if not files or not (exp / "config.yaml").is_file():
        return {}
    cfg = load_config(exp / "config.yaml")
    rate = cfg.data.sample_rate / code_hop(cfg)
    k = cfg.model.quantizer.codebook_size
    out = {}
    for path in files:
        try:
            units = read_units(path)
        except DataError as e:
            warnings.warn(f"{path} left out of the report: {e}")
            continue
        if not units or looks_deduplicated(units):
            continue
        seqs = list(units.values())
        flat = np.concatenate(seqs)
        if flat.size == 0 or flat.max() >= k:
            warnings.warn(f"{path} left out of the report: its units are not codes of this "
                          f"model (K = {k})")
            continue
        block = label_free_units(seqs, n_codes=k, frame_rate_hz=rate)
        out[path.stem] = (block, np.bincount(flat, minlength=k).tolist(), path)
    return out


# ------------------------------------------------------------------------------------- data


def _count(path: Path) -> tuple[int, int]:
    """(utterances, speakers) of a Kaldi dir's or dump's utt2spk."""
    rows = [ln.split() for ln in (path / "utt2spk").read_text(encoding="utf-8").splitlines()
            if ln.strip()] if (path / "utt2spk").is_file() else []
    return len(rows), len({r[1] for r in rows if len(r) > 1})


def describe_data(path: Path) -> dict:
    """What the data at `path` is: ``kind`` (builtin, kaldi, dump, conversion), ``what`` (one
    sentence), ``path`` and, for a conversion dir, ``convert`` (its conversion.json)."""
    from speechvq.data.builtin.corpus import is_builtin_split

    n, spk = _count(path)
    out = {"path": str(path)}
    if (path / "dump.json").is_file():
        meta = json.loads((path / "dump.json").read_text(encoding="utf-8"))
        source = Path(meta.get("source") or "")
        inner = describe_data(source)["what"] if (source / "wav.scp").is_file() else \
            f"`{source}` (no longer there)"
        return {**out, "kind": "dump", "what": f"a dump ({n} utterances at "
                f"{meta.get('sample_rate')} Hz) of {inner}"}
    if (path / STAMP).is_file() or (path / "utt2src").is_file():
        stamp = _read_stamp(path)
        made = f" by `{stamp['command']}`{ran_in(stamp)}" if stamp.get("command") else \
            " by `speechvq convert` (command not recorded: an older speechvq)"
        return {**out, "kind": "conversion", "convert": stamp,
                "what": f"converted speech, {n} files, written{made}"}
    if is_builtin_split(path):
        return {**out, "kind": "builtin", "what": f"the built-in corpus, split `{path.name}`: "
                "synthetic speech (eSpeak NG formant synthesis, not recordings), "
                f"{n} utterances by {spk} speakers"}
    return {**out, "kind": "kaldi", "what": f"a Kaldi data dir of {n} utterances by {spk} "
            "speakers (the audio its wav.scp lists)"}


def _read_stamp(conv_dir: Path) -> dict:
    try:
        stamp = json.loads((conv_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _data_paths(src: dict) -> list[str]:
    """The data paths a block's source names (its ``data``: a path, or a dict of paths and
    lists of paths)."""
    data = src.get("data")
    values = list(data.values()) if isinstance(data, dict) else [data]
    flat = [v for x in values for v in (x if isinstance(x, list) else [x])]
    return [v for v in flat if isinstance(v, str)]


def _datasets(g: Gathered) -> None:
    """``datasets.<path as given>`` for every data dir or dump a block's command read, and the
    convert command of each conversion dir under ``sources.conversion.<split>.convert``."""
    for key, src in list(g.report["sources"].items()):
        if not isinstance(src, dict):
            continue
        for given in _data_paths(src):
            found = locate(given, g.bases(src))
            if found is None or not found.is_dir() or not any(
                    (found / f).is_file() for f in ("wav.scp", "dump.json")):
                continue
            desc = g.report["datasets"].setdefault(given, describe_data(found))
            if key.startswith("conversion.") and desc["kind"] == "conversion":
                src["convert"] = desc["convert"]


def _extend(g: Gathered) -> None:
    """Add ``units_unscored`` for the units files no evaluation scored, and ``datasets``."""
    _datasets(g)
    scored_files = {str(Path(src["data"]["units"]).resolve())
                    for key, src in g.report["sources"].items() if key.startswith("units.")
                    and isinstance(src.get("data"), dict) and src["data"].get("units")}
    described = set(g.report["units"]) | set(g.report["units_unscored"])  # by an evaluation
    for split, (block, counts, path) in unscored_units(g.exp, described, scored_files).items():
        g.add("units_unscored", split, block,
              {"command": f"speechvq report --exp {shlex.quote(str(g.exp))}", "data": None,
               "file": str(path)}, {"code_counts": counts})


def _unscored_md(split: str, block: dict, src: dict, figures: list) -> list[str]:
    metrics = (CODES_USED, PERPLEXITY, BITRATE, BITRATE_DEDUP)
    heads = ["", CODES_USED.label, PERPLEXITY.label, BITRATE.short, BITRATE_DEDUP.short]
    cells = ["value", f"{block[CODES_USED.name]} of {block['codebook_size']}",
             PERPLEXITY.format(block[PERPLEXITY.name]),
             *(f"{block[m.name]:.0f}" for m in (BITRATE, BITRATE_DEDUP))]
    ci = block.get("ci95") or {}
    rows = [cells] + ([["95 % interval", *(m.interval(ci.get(m.name)) for m in metrics)]]
                      if ci else [])
    data = src.get("data") if isinstance(src.get("data"), dict) else {}
    what = data.get("data") or src.get("file")
    lines = [f"## Units without alignments: {split}", "",
             f"No phone alignments for {split}, so only label-free statistics of "
             f"`{what}` ({block['n_utterances']} utterances, {block['hours']:.2f} h, "
             f"{block['frame_rate_hz']:g} Hz, K = {block['codebook_size']}):", "",
             "| " + " | ".join(heads) + " |", "|---|" + "---:|" * len(metrics),
             *("| " + " | ".join(r) + " |" for r in rows), ""]
    if ci:
        lines += ["Intervals: percentile bootstrap over the utterances.", ""]
    return lines + figure_links(figures) + [""]


# ------------------------------------------------------------------------------------ units


def _main_system(block: dict) -> str | None:
    systems = [s for s in block if isinstance(block[s], dict)]
    main = [s for s in systems if s not in BASELINES]
    return main[0] if main else None


def baseline_wins(block: dict) -> list[str]:
    """One sentence per baseline that beats the main system, naming each metric it wins on
    (every `UNITS` metric with a better direction)."""
    main = _main_system(block)
    if main is None:
        return []
    out = []
    for b in BASELINES:
        wins = []
        for m in (m for m in UNITS if m.better):
            mine, theirs = block[main].get(m.name), block.get(b, {}).get(m.name)
            if mine is None or theirs is None:
                continue
            if (theirs > mine) if m.better == "higher" else (theirs < mine):
                wins.append(f"{m.name} ({m.show(theirs)} vs {m.show(mine)})")
        if wins:
            out.append(f"{b} beats {main} on {', '.join(wins)}")
    return out


def _units_md(split: str, block: dict, src: dict, figures: list, out: Path) -> list[str]:
    systems = [s for s in block if isinstance(block[s], dict)]
    main = _main_system(block)
    systems = ([main] if main else []) + [s for s in BASELINES if s in systems] + \
        [s for s in systems if s != main and s not in BASELINES]
    cols = unit_columns(block, systems)
    fit = block.get("fit_on")
    table = Table(f"units_{split}", f"Units on {split}: {block['frame_rate_hz']:g} Hz, K = "
                  f"{block['codebook_size']}, {block['n_phones']} phones",
                  ["system", *(c.header for c in cols)],
                  [[s, *(c.format(block[s].get(c.name)) for c in cols)] for s in systems],
                  strong={0} if main else set(),
                  notes=["Percentages; ABX is an error rate (lower is better), ABXq is ABX on "
                         "the code embeddings; n/a: not computable for that system.",
                         abbreviations(cols)])
    lines = [f"## Units: {split}", "",
             f"{block['frame_rate_hz']:g} Hz, K = {block['codebook_size']}, "
             f"{block['n_phones']} phones; code-to-phone mapping fitted on "
             f"{'the scored data itself' if fit == 'eval' else f'`{fit}`'}.", "",
             *export_table(out, table), *_units_intervals(split, block, systems, cols, out)]
    chance = block.get(main or systems[0], {}).get(CHANCE.name)
    if chance is not None:
        lines += ["", f"Chance ({CHANCE.label}): {CHANCE.show(chance)}."]
    wins = baseline_wins(block)
    lines += ["", ("Where a baseline wins: " + "; ".join(wins) + ".") if wins else
              f"{main} is ahead of every baseline on every scored metric." if main else ""]
    abx_n = block.get(main, {}).get("abx_n_triplets_within") if main else None
    if abx_n is not None:
        from speechvq.evaluation.speech.abx import SPANS
        span = block[main].get("abx_items", "triphone")  # results from before issue 20: triphone
        lines += ["", f"ABX: {SPANS.get(span, span)}, cosine (angular) distance, DTW; "
                      f"{abx_n} within-speaker and {block[main].get('abx_n_triplets_across')} "
                      f"across-speaker triplets scored."]
    return lines + ["", source_line(src), ""] + figure_links(figures) + [""]


def _units_intervals(split: str, block: dict, systems: list[str], cols: list,
                     out: Path) -> list[str]:
    """The 95 % intervals of the units table's figures, as a table of the same shape."""
    cols = [c for c in cols if any(c.name in block[s].get("ci95", {}) for s in systems)]
    if not cols:
        return []
    n = block[systems[0]].get("n_utterances")
    table = Table(f"units_{split}_ci95", f"95 % intervals of the units figures on {split}",
                  ["system", *(c.header for c in cols)],
                  [[s, *(c.interval(block[s].get("ci95", {}).get(c.name)) for c in cols)]
                   for s in systems],
                  notes=[f"Percentile bootstrap, 1000 resamples of the {n} scored utterances "
                         "(the code-to-phone mapping refitted in each when it is fitted on the "
                         "scored data); ABX: resamples of the ABX items, from the per-triplet "
                         "results."])
    return ["", f"{table.title}:", "", *export_table(out, table)]


# ------------------------------------------------------------------------------- conversion


def _conversions_md(blocks: dict, out: Path) -> list[str]:
    """Every conversion set in one table (a row per set, a column per `CONVERSION` metric)."""
    cols = [c for c in CONVERSION if any(c.name in b for b in blocks.values())]
    table = Table("conversion", "Voice conversion, one row per set of converted files",
                  ["set", *(c.header for c in cols)],
                  [[split, *(c.format(b.get(c.name)) for c in cols)]
                   for split, b in blocks.items()],
                  notes=["Percentages, MCD in dB; n/a: not computable (e.g. no converted file "
                         "has a source speaker the classifier knows).", abbreviations(cols)])
    return ["## Conversion", "", *export_table(out, table), ""]


def _conversion_md(split: str, m: dict, src: dict, figures: list, out: Path) -> list[str]:
    ci = m.get("ci95", {})
    table = Table(f"conversion_{split}", f"Voice conversion: {split}",
                  ["measure", "value", "95 % interval", "note"],
                  [[c.label, c.show(m.get(c.name)), c.interval(ci.get(c.name)), note]
                   for c, note in conversion_rows(m)], align="lrrl",
                  notes=["Intervals: percentile bootstrap over the converted files (the "
                         "classifier's held-out accuracy: over its held-out utterances); n/a "
                         "where a figure has none (results written before intervals existed)."])
    lines = [f"## Conversion: {split}", ""]
    stamp = (src or {}).get("convert") or {}
    if stamp.get("command"):
        lines += [f"The converted wavs were made by `{stamp['command']}`{ran_in(stamp)}.", ""]
    lines += export_table(out, table)
    if "another training speaker" in str(m.get("mcd_topline")):
        lines += ["", "Where the reference holds one reading per target speaker, the topline "
                      "compares the target's reading with another speaker's: it bounds what a "
                      "different voice scores, not what a perfect conversion would."]
    acc = m.get(SPEAKER_ID_HELDOUT.name)
    if acc is not None and acc < 0.9:
        lines += ["", f"The speaker classifier is only {SPEAKER_ID_HELDOUT.show(acc)} accurate "
                      "on held-out unconverted audio: read its scores on converted audio with "
                      "care."]
    return lines + ["", source_line(src), ""] + figure_links(figures) + [""]


# ------------------------------------------------------------------------------------ render


def _data_md(datasets: dict) -> list[str]:
    if not datasets:
        return []
    lines = ["## Data", "", "What each data path the commands above read is (paths as the "
             "commands gave them):", "", "| data | what it is |", "|---|---|"]
    lines += [f"| `{given}` | {d['what']} |" for given, d in datasets.items()]
    if any(d["kind"] == "builtin" or "built-in corpus" in d["what"] for d in datasets.values()):
        lines += ["", "The built-in corpus is synthesised, so every figure here is measured on "
                      "synthetic speech: easier than recordings, not a claim about real speech."]
    return lines + [""]


def render(g: Gathered, out: Path) -> list[str]:
    """The speech sections of report.md (training runs, data, units, unscored units,
    conversion), their PNG figures in `out` and the tables' CSV and LaTeX in ``out/tables``."""
    from speechvq.evaluation import figures as fig

    report, details, sources = g.report, g.details, g.report["sources"]
    data_cfg = fig.data_config(g.exp / "config.yaml")
    md = training_md(g, lambda run, stem: fig.training_curves(run.records, out / f"{stem}.png",
                                                               LOSS_CURVES, CODEBOOK), TRAINING)
    md += _data_md(report["datasets"])
    for split, block in report["units"].items():
        d = details["units"].get(split, {})
        md += _units_md(split, block, sources.get(f"units.{split}"),
                        [fig.code_usage(d, split, out / f"code_usage_{split}.png"),
                         fig.cooccurrence_map(d, split, out / f"cooccurrence_{split}.png")], out)
    for split, block in report["units_unscored"].items():
        png = fig.code_usage(details["units_unscored"][split], split,
                             out / f"code_usage_{split}.png")
        md += _unscored_md(split, block, sources[f"units_unscored.{split}"], [png])
    if report["conversion"]:
        md += _conversions_md(report["conversion"], out)
    for split, m in report["conversion"].items():
        d = details["conversion"].get(split, {})
        png, missing = fig.spectrograms(d, split, data_cfg, out / f"spectrograms_{split}.png")
        md += _conversion_md(split, m, sources.get(f"conversion.{split}"), [png], out)
        if missing:
            md += [f"Spectrograms left out: {missing}.", ""]
    return md


register_renderer("speech", Renderer(KINDS, render, _extend))
