"""The image task's report: the VQ-VAE beside patch k-means at the same bits per image.

Renders the blocks `speechvq.evaluation.report.core` gathers from ``eval/images_*.json``
(`speechvq.evaluation.image`), in DESIGN.md's keys ``images.<split>.<system>.<metric>``: one
table per split (systems x `speechvq.evaluation.image.IMAGES`, with the 95 % intervals; also
as CSV and LaTeX under ``report/tables/``), a sentence on the PSNR difference, and the evaluation's figures (originals above reconstructions,
code usage), copied into the report folder so that it stands alone; training curves from
metrics.jsonl (`speechvq.evaluation.figures.training_curves`); and the sections of a prior over
the model's codes evaluated into this exp dir (`speechvq.evaluation.report.prior.prior_md`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from speechvq.evaluation.image import IMAGES, SYSTEM_LABELS, SYSTEMS, psnr_gain_line
from speechvq.evaluation.report.core import (Gathered, Renderer, figure_links,
                                             register_renderer, source_line, training_md)
from speechvq.evaluation.report.tables import Table, abbreviations, export_table
from speechvq.fileio import atomic_path
from speechvq.models.image import MSE, RECON_LOSS, TRAINING
from speechvq.models.outputs import CODEBOOK, LOSS, VQ_LOSS

KINDS = ("images", "prior")  # prior: a prior of this model's codes evaluated into its exp dir
LOSS_CURVES = (LOSS, RECON_LOSS, VQ_LOSS)


def _copy_figures(figures: dict, out: Path) -> list[str]:
    """The evaluation's PNGs copied into `out`; their names (a missing one is left out)."""
    names = []
    for path in map(Path, figures.values()):
        if path.is_file():
            with atomic_path(out / path.name) as tmp:
                shutil.copyfile(path, tmp)
            names.append(path.name)
    return names


def _interval(block: dict, metric: str) -> str:
    ci = block.get("ci95", {}).get(metric)
    return "" if not ci else f" [{ci[0]:.2f}, {ci[1]:.2f}]"


def _images_md(split: str, block: dict, src: dict | None, figures: list[str],
               out: Path) -> list[str]:
    systems = [s for s in SYSTEMS if isinstance(block.get(s), dict)]
    cols = [m for m in IMAGES if any(m.name in block[s] for s in systems)]
    rows = [[SYSTEM_LABELS.get(s, s)]
            + [m.format(block[s].get(m.name))
               + (_interval(block[s], m.name) if m.name in (MSE.name, "psnr_db") else "")
               for m in cols] for s in systems]
    what = (f"{block.get('n_images')} images of {'x'.join(map(str, block['image_shape']))}, "
            f"{'x'.join(map(str, block['latent_shape']))} codes of K = "
            f"{block['codebook_size']} ({block.get('output')} decoder)")
    fit = "the scored images" if block["fit_on"] == "eval" else f"`{block['fit_on']}`"
    table = Table(f"images_{split}", f"Image reconstruction on {split}: {what}",
                  ["system", *(m.header for m in cols)], rows,
                  strong={systems.index("vqvae")} if "vqvae" in systems else set(),
                  notes=[f"k-means on {'x'.join(map(str, block['kmeans']['patch']))} patches "
                         f"fitted on {fit}, at the same bits per image.",
                         "Brackets: 95 % bootstrap intervals over images.",
                         abbreviations(cols)])
    lines = [f"## Images: {split}", "", what + ".", "", *export_table(out, table)]
    if {"vqvae", "patch_kmeans"} <= set(systems):
        lines += ["", psnr_gain_line(block) + "."]
    return lines + ["", source_line(src), ""] + figure_links(figures) + [""]


def render(g: Gathered, out: Path) -> list[str]:
    """The image sections of report.md (training runs, one section per scored split), their
    figures in `out` and the tables' CSV and LaTeX in ``out/tables``."""
    from speechvq.evaluation import figures as fig

    md = training_md(g, lambda run, stem: fig.training_curves(run.records, out / f"{stem}.png",
                                                               LOSS_CURVES, CODEBOOK), TRAINING)
    for split, block in g.report["images"].items():
        figures = g.details["images"].get(split, {}).get("figures", {})
        md += _images_md(split, block, g.report["sources"].get(f"images.{split}"),
                         _copy_figures(figures, out), out)
    from speechvq.evaluation.report.prior import prior_md  # it imports this module
    return md + prior_md(g, out)


register_renderer("image", Renderer(KINDS, render))
