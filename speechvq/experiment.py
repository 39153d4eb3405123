"""How a rerun on an experiment dir is compared with the runs it records.

``cmdline.txt`` gets one `speechvq.provenance.run_info` block per run (the command, its working
directory, the git commit of the code, package versions); a rerun on an exp dir resumes only when
`config_differences` between the checkpoint's config (as today's keys, `resolved_config`) and
the new one touch nothing learned.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from speechvq.config import config_from_dict, config_to_dict
from speechvq.fileio import atomic_write_text


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += config_differences(a, b, name + ".")
        elif a != b:
            keys.append(name)
    return keys


def resolved_config(values: dict, path: Path) -> dict:
    """A checkpoint's config as today's keys and defaults (an older run resumes if nothing it
    learned from changed); the raw dict when it no longer resolves."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moved keys were reported when the run was set up
        try:
            return config_to_dict(config_from_dict(values, source=f"checkpoint {path}"))
        except Exception:  # noqa: BLE001 - an unresolvable old config just compares as it is
            return values


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metrics.jsonl lines past `step` (written by a run that was killed later, then resumed
    from an earlier checkpoint), and a last line torn by a kill in mid-write."""
    if not path.exists():
        return
    kept = []
    for ln in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(ln)
        except ValueError:  # torn or empty
            continue
        if isinstance(record, dict) and record.get("step", 0) <= step:
            kept.append(ln)
    atomic_write_text(path, "".join(ln + "\n" for ln in kept))
