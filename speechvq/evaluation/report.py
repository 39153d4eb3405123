"""`speechvq report --exp EXP`: one report of an experiment, in Markdown, JSON and figures.

Gathers ``EXP/eval/units_*.json`` and ``EXP/eval/conversion_*.json`` (written by `speechvq
evaluate`, `speechvq.evaluation.speech.unit_eval` and `speechvq.evaluation.speech.conversion`), ``metrics.jsonl``,
``config.yaml`` and ``cmdline.txt`` into ``EXP/report/``:

- ``report.json``: DESIGN.md's keys, ``units.<split>.<system>.<metric>`` (plus ``frame_rate_hz``,
  ``codebook_size``, ``fit_on``, ``n_phones``), ``conversion.<split>.<metric>`` and
  ``training.<metric>`` (final loss terms, bits per sample, perplexity, codes used, steps, wall
  time), each number copied unchanged from its source; ``sources.<block>`` gives the command
  and data that produced each block (``units.test``, ``conversion.test_mel``, ``training``).
  Units files in ``EXP/units/`` that have no evaluation (data without phone alignments, such as
  VCTK or a `--corpus-dir` run) get the label-free statistics under ``units_unscored.<split>``:
  codes used, perplexity and bitrate (ZeroSpeech 2019), computed here from the file.
- ``report.md``: the same as tables, the VQ-VAE beside its baselines, saying where a baseline
  wins, with the figures embedded.
- PNG figures (matplotlib, Agg backend): training curves, sorted code usage, the code-by-phone
  co-occurrence (codes ordered by the phone they map to) and log-mel spectrograms of source /
  converted / target for a few converted sentences (`speechvq.evaluation.figures`).

Every file is written to a temp name and renamed.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from speechvq.errors import DataError
from speechvq.evaluation.results import read_result
from speechvq.fileio import atomic_write_text
from speechvq.evaluation.speech.unit_eval import COLUMNS, format_value

HIGHER = ("mapping_accuracy", "mapping_accuracy_nosil", "phone_purity", "cluster_purity", "pnmi")
LOWER = ("abx_within", "abx_across")
BASELINES = ("majority", "random", "mfcc_kmeans")
TRAINING_KEYS = ("loss", "nll", "bits_per_sample", "vq_loss", "mel_loss", "perplexity",
                 "codes_used")


def read_metrics(path: Path) -> list[dict]:
    """The records of ``metrics.jsonl`` (empty when the file is absent)."""
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise DataError(f"{path}:{n}: not a JSON line; remove it or retrain") from None
    return rows


def training_summary(records: list[dict]) -> dict:
    """``training.<metric>``: the last logged value of each loss term and codebook statistic,
    ``steps`` (last step) and ``wall_time_s`` (sum of the logged mean step times x steps)."""
    if not records:
        return {}
    last = records[-1]
    out = {k: last[k] for k in TRAINING_KEYS if k in last}
    out["steps"] = int(last.get("step", 0))
    prev, wall = 0, 0.0
    for r in records:
        if "step_time" in r:
            wall += float(r["step_time"]) * (int(r["step"]) - prev)
        prev = int(r.get("step", prev))
    out["wall_time_s"] = round(wall, 3) if any("step_time" in r for r in records) else None
    return out


def _training_command(exp: Path) -> tuple[str | None, str | None]:
    """(last command line of cmdline.txt, its --data value)."""
    path = exp / "cmdline.txt"
    if not path.is_file():
        return None, None
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines()
             if ln.strip() and not ln.startswith("#")]
    if not lines:
        return None, None
    words = shlex.split(lines[-1])
    data = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--data"), None)
    return lines[-1], data


def gather(exp: Path) -> dict:
    """report.json's content (see the module docstring)."""
    report: dict = {"units": {}, "conversion": {}, "training": {}, "units_unscored": {},
                    "sources": {}}
    details: dict = {"units": {}, "conversion": {}, "units_unscored": {}}
    for kind in ("units", "conversion"):
        for path in sorted((exp / "eval").glob(f"{kind}_*.json")):
            result = read_result(path)
            if kind not in result or not isinstance(result[kind], dict):
                raise DataError(f"{path} has no '{kind}' block; rerun `speechvq evaluate {kind}`")
            for split, block in result[kind].items():
                report[kind][split] = block
                report["sources"][f"{kind}.{split}"] = {
                    "command": result.get("command"), "data": result.get("data"),
                    "file": str(path), "created": result.get("created")}
                details[kind][split] = result.get("details", {})
    scored_files = {str(Path(src["data"]["units"]).resolve())
                    for key, src in report["sources"].items() if key.startswith("units.")
                    and isinstance(src.get("data"), dict) and src["data"].get("units")}
    for split, (block, counts, path) in unscored_units(exp, set(report["units"]),
                                                       scored_files).items():
        report["units_unscored"][split] = block
        details["units_unscored"][split] = {"code_counts": counts}
        report["sources"][f"units_unscored.{split}"] = {
            "command": f"speechvq report --exp {shlex.quote(str(exp))}", "data": None,
            "file": str(path)}
    records = read_metrics(exp / "metrics.jsonl")
    report["training"] = training_summary(records)
    if records:
        command, data = _training_command(exp)
        report["sources"]["training"] = {"command": command, "data": data,
                                         "file": str(exp / "metrics.jsonl")}
    return {"report": report, "details": details, "records": records}


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
    from speechvq.data.codes import dedup, looks_deduplicated, read_units
    from speechvq.evaluation.speech.units import bitrate_bps, codes_used, perplexity

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
        durations = [len(u) / rate for u in seqs]
        block = {"frame_rate_hz": rate, "codebook_size": k, "n_utterances": len(seqs),
                 "n_frames": int(flat.size), "hours": float(sum(durations) / 3600),
                 "codes_used": codes_used(flat), "perplexity": perplexity(flat),
                 "bitrate_bps": bitrate_bps(seqs, durations),
                 "bitrate_bps_dedup": bitrate_bps([dedup(u) for u in seqs], durations)}
        out[path.stem] = (block, np.bincount(flat, minlength=k).tolist(), path)
    return out


def _unscored_md(split: str, block: dict, src: dict, figures: list[str]) -> list[str]:
    lines = [f"## Units without alignments: {split}", "",
             f"No phone alignments for {split}, so only label-free statistics of "
             f"`{src['file']}` ({block['n_utterances']} utterances, {block['hours']:.2f} h, "
             f"{block['frame_rate_hz']:g} Hz, K = {block['codebook_size']}):", "",
             "| codes used | perplexity | bits/s | bits/s (deduplicated) |",
             "|---:|---:|---:|---:|",
             f"| {block['codes_used']} of {block['codebook_size']} | {block['perplexity']:.1f} | "
             f"{block['bitrate_bps']:.0f} | {block['bitrate_bps_dedup']:.0f} |", ""]
    return lines + [f"![{f}]({f})" for f in figures] + [""]


def _main_system(block: dict) -> str | None:
    systems = [s for s in block if isinstance(block[s], dict)]
    main = [s for s in systems if s not in BASELINES]
    return main[0] if main else None


def baseline_wins(block: dict) -> list[str]:
    """One sentence per baseline that beats the main system, naming each metric it wins on."""
    main = _main_system(block)
    if main is None:
        return []
    out = []
    for b in BASELINES:
        wins = []
        for metric in HIGHER + LOWER:
            mine, theirs = block[main].get(metric), block.get(b, {}).get(metric)
            if mine is None or theirs is None:
                continue
            if (theirs > mine) if metric in HIGHER else (theirs < mine):
                wins.append(f"{metric} ({100 * theirs:.1f} % vs {100 * mine:.1f} %)")
        if wins:
            out.append(f"{b} beats {main} on {', '.join(wins)}")
    return out


def _source_line(src: dict | None) -> str:
    if not src:
        return ""
    data = src.get("data")
    inputs = ", ".join(f"{k} `{v}`" for k, v in data.items() if isinstance(v, str)) \
        if isinstance(data, dict) else f"data `{data}`" if data else ""
    return f"Produced by `{src.get('command')}`" + (f" (inputs: {inputs})." if inputs else ".")


def _units_md(split: str, block: dict, src: dict, figures: list[str]) -> list[str]:
    systems = [s for s in block if isinstance(block[s], dict)]
    main = _main_system(block)
    systems = ([main] if main else []) + [s for s in BASELINES if s in systems] + \
        [s for s in systems if s != main and s not in BASELINES]
    cols = [c for c in COLUMNS if any(block[s].get(c[0]) is not None for s in systems)]
    fit = block.get("fit_on")
    lines = [f"## Units: {split}", "",
             f"{block['frame_rate_hz']:g} Hz, K = {block['codebook_size']}, "
             f"{block['n_phones']} phones; code-to-phone mapping fitted on "
             f"{'the scored data itself' if fit == 'eval' else f'`{fit}`'}. Percentages; "
             "ABX is an error rate (lower is better), ABXq is ABX on the code embeddings.", "",
             "| system | " + " | ".join(c[1] for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for s in systems:
        name = f"**{s}**" if s == main else s
        lines.append(f"| {name} | " + " | ".join(format_value(block[s].get(c[0]), c[2])
                                                 for c in cols) + " |")
    chance = block.get(main or systems[0], {}).get("chance")
    if chance is not None:
        lines += ["", f"Chance (majority phone share of the frames): {100 * chance:.1f} %."]
    wins = baseline_wins(block)
    lines += ["", ("Where a baseline wins: " + "; ".join(wins) + ".") if wins else
              f"{main} is ahead of every baseline on every scored metric." if main else ""]
    abx_n = block.get(main, {}).get("abx_n_triplets_within") if main else None
    if abx_n is not None:
        lines += ["", f"ABX sample: {abx_n} within-speaker and "
                      f"{block[main].get('abx_n_triplets_across')} across-speaker triplets."]
    lines += ["", _source_line(src), ""] + [f"![{f}]({f})" for f in figures] + [""]
    return lines


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def _db(v) -> str:
    return "-" if v is None else f"{v:.2f} dB"


def _conversion_md(split: str, m: dict, src: dict, figures: list[str]) -> list[str]:
    rows = [
        ("speaker-ID accuracy on held-out real audio", _pct(m.get("speaker_id_heldout_accuracy")),
         f"{m.get('speaker_id_n_heldout')} utterances, {m.get('speaker_id_heldout_set')}; "
         f"{m.get('speaker_id_n_speakers')} speakers"),
        ("converted files identified as the target", _pct(m.get("speaker_id_target")),
         f"{m.get('n_converted')} files"),
        ("converted files identified as the source", _pct(m.get("speaker_id_source")),
         f"{m.get('n_seen_sources')} with a source speaker the classifier knows"),
        ("code agreement with the source", _pct(m.get("code_agreement")), "re-encoded audio"),
        ("mapping accuracy against the source alignment", _pct(m.get("mapping_accuracy")),
         f"unconverted source: {_pct(m.get('mapping_accuracy_source'))}; mapping fitted on "
         f"{m.get('mapping_fit_on')}"),
        ("MCD, converted vs target reading", _db(m.get("mcd_db")),
         f"{m.get('n_mcd')} files ({m.get('n_no_parallel')} without a parallel reading)"),
        ("MCD baseline, unconverted source vs target", _db(m.get("mcd_baseline_db")), ""),
        ("MCD topline", _db(m.get("mcd_topline_db")), str(m.get("mcd_topline") or "")),
    ]
    lines = [f"## Conversion: {split}", "", "| measure | value | note |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    if "another training speaker" in str(m.get("mcd_topline")):
        lines += ["", "Where the reference holds one reading per target speaker, the topline "
                      "compares the target's reading with another real speaker's: it bounds "
                      "what a different real voice scores, not what a perfect conversion would."]
    acc = m.get("speaker_id_heldout_accuracy")
    if acc is not None and acc < 0.9:
        lines += ["", f"The speaker classifier is only {100 * acc:.1f} % accurate on real "
                      "audio: read its scores on converted audio with care."]
    lines += ["", _source_line(src), ""] + [f"![{f}]({f})" for f in figures] + [""]
    return lines


def _training_md(t: dict, src: dict | None, figures: list[str]) -> list[str]:
    if not t:
        return ["## Training", "", "No metrics.jsonl in the exp dir.", ""]
    names = {"loss": "total loss", "nll": "WaveNet NLL (nats/sample)", "bits_per_sample":
             "bits per sample", "vq_loss": "VQ loss", "mel_loss": "mel L1 loss",
             "perplexity": "code perplexity (batch)", "codes_used": "codes used (batch)",
             "steps": "steps", "wall_time_s": "wall time (s, summed step times)"}
    lines = ["## Training", "", "| metric (last logged) | value |", "|---|---:|"]
    for k, v in t.items():
        text = "-" if v is None else str(v) if isinstance(v, int) else f"{v:.4g}"
        lines.append(f"| {names.get(k, k)} | {text} |")
    return lines + ["", _source_line(src), ""] + [f"![{f}]({f})" for f in figures] + [""]


def make_report(exp_dir: str | os.PathLike) -> Path:
    """`speechvq report --exp EXP`: write ``EXP/report/{report.md, report.json, *.png}``.

    Args:
        exp_dir: the experiment dir (``eval/*.json``, ``metrics.jsonl``, ``config.yaml``).
    Returns:
        The path of ``report.md``.
    Raises:
        DataError: EXP is not a folder, or holds neither evaluations nor training metrics.
    """
    from speechvq.evaluation import figures as fig

    exp = Path(exp_dir)
    if not exp.is_dir():
        raise DataError(f"--exp '{exp}' is not a folder; give the exp dir of `speechvq train`")
    g = gather(exp)
    report, details = g["report"], g["details"]
    if not (report["units"] or report["conversion"] or report["training"]
            or report["units_unscored"]):
        raise DataError(f"nothing to report in '{exp}': no eval/*.json and no metrics.jsonl; "
                        "run `speechvq train` and `speechvq evaluate` first")
    out = exp / "report"
    out.mkdir(parents=True, exist_ok=True)
    data_cfg = fig.data_config(exp / "config.yaml")
    md = [f"# Report: {exp}", "",
          f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `speechvq report --exp {exp}`. "
          "Every number is also in report.json, with the command and data that produced it.", ""]
    pngs = [p for p in [fig.training_curves(g["records"], out / "training_curves.png")] if p]
    md += _training_md(report["training"], report["sources"].get("training"), pngs)
    for split, block in report["units"].items():
        d = details["units"].get(split, {})
        pngs = [p for p in (fig.code_usage(d, split, out / f"code_usage_{split}.png"),
                            fig.cooccurrence_map(d, split, out / f"cooccurrence_{split}.png"))
                if p]
        md += _units_md(split, block, report["sources"].get(f"units.{split}"), pngs)
    for split, block in report["units_unscored"].items():
        png = fig.code_usage(details["units_unscored"][split], split,
                             out / f"code_usage_{split}.png")
        md += _unscored_md(split, block, report["sources"][f"units_unscored.{split}"],
                           [png] if png else [])
    for split, m in report["conversion"].items():
        d = details["conversion"].get(split, {})
        png, missing = fig.spectrograms(d, split, data_cfg, out / f"spectrograms_{split}.png")
        md += _conversion_md(split, m, report["sources"].get(f"conversion.{split}"),
                             [png] if png else [])
        if missing:
            md += [f"Spectrograms left out: {missing}.", ""]
    atomic_write_text(out / "report.json", json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / "report.md", "\n".join(md).rstrip() + "\n")
    return out / "report.md"
