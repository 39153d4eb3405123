"""The video task's report: reconstruction, greedy continuations beside the repeat-last-frame
and blank-frame baselines, and the prior's NLL beside uniform, unigram and bigram codes.

Renders the blocks `speechvq.evaluation.report.core` gathers from ``eval/video_*.json``
(`speechvq.evaluation.video`) and ``eval/prior_*.json`` (`speechvq evaluate prior --exp` of this
exp, rendered by `speechvq.evaluation.report.prior.prior_md`), in DESIGN.md's keys
``video.<split>.vqvae.recon_psnr_db``, ``video.<split>.<system>.psnr_db_frames_2_5`` and
``psnr_db_per_frame``, ``prior.<split>.<system>.bits_per_code``: one table per split (also as
CSV and LaTeX under ``report/tables/``), a sentence on the continuation against the better
baseline, and the evaluation's figures (the PSNR-per-frame plot, a PNG strip and an animated GIF
per example clip), copied into the report folder so that it stands alone; training curves from
metrics.jsonl.
"""

from __future__ import annotations

from pathlib import Path

from speechvq.evaluation.report.core import (Gathered, Renderer, figure_links,
                                             register_renderer, source_line, training_md)
from speechvq.evaluation.report.image import _copy_figures
from speechvq.evaluation.report.tables import Table, export_table
from speechvq.evaluation.video import (CONTINUATION_SYSTEMS, FRAMES_2_5, PER_FRAME, RECON,
                                       SYSTEM_LABELS, continuation_line)
from speechvq.models.image import RECON_LOSS, TRAINING
from speechvq.models.outputs import CODEBOOK, LOSS, VQ_LOSS

KINDS = ("video", "prior")  # prior: a prior of this model's codes evaluated into its exp dir
LOSS_CURVES = (LOSS, RECON_LOSS, VQ_LOSS)


def _video_md(split: str, block: dict, src: dict | None, figures: list[str],
              out: Path) -> list[str]:
    ci = block["vqvae"].get("ci95", {}).get(RECON)
    shape = "x".join(map(str, block.get("frame_shape", ()))) or "?"
    latents = "x".join(map(str, block.get("latent_shape", ()))) or "?"
    what = (f"{block.get('n_clips', '?')} clips of {block.get('frames', '?')} frames of {shape}, "
            f"{latents} codes of K = {block.get('codebook_size', '?')}")
    lines = [f"## Video: {split}", "", what + ".", "",
             f"Reconstruction PSNR over all pixels: **{block['vqvae'][RECON]:.2f} dB**"
             + (f" [{ci[0]:.2f}, {ci[1]:.2f}] (95 % bootstrap over clips)." if ci else "."), ""]
    if "continuation" in block:
        n = len(block["continuation"][PER_FRAME])
        rows = [[SYSTEM_LABELS.get(s, s), f"{block[s][FRAMES_2_5]:.2f}",
                 *(f"{v:.1f}" for v in block[s][PER_FRAME])] for s in CONTINUATION_SYSTEMS]
        table = Table(f"video_{split}",
                      f"Continuations of {block['n_clips_continued']} {split} clips from "
                      f"their first {block['prompt_frames']} frames "
                      f"({block['prompt_latent_frames']} latent frames): PSNR (dB)",
                      ["system", "frames 2-5", *(str(k) for k in range(1, n + 1))], rows,
                      strong={0},
                      notes=["Columns 1, 2, ...: predicted frame k (PSNR over that frame of "
                             "every continued clip); frames 2-5: the mean of those four.",
                             "Greedy: the prior's most likely code at each step."])
        lines += [*export_table(out, table), "", continuation_line(block) + ".", ""]
    return lines + [source_line(src), ""] + figure_links(figures) + [""]


def render(g: Gathered, out: Path) -> list[str]:
    """The video sections of report.md, their figures in `out`, the tables in ``out/tables``."""
    from speechvq.evaluation import figures as fig

    md = training_md(g, lambda run, stem: fig.training_curves(run.records, out / f"{stem}.png",
                                                               LOSS_CURVES, CODEBOOK), TRAINING)
    for split, block in g.report["video"].items():
        figures = g.details["video"].get(split, {}).get("figures", {})
        order = sorted(figures, key=lambda k: (k != "psnr_per_frame", k.startswith("gif"), k))
        md += _video_md(split, block, g.report["sources"].get(f"video.{split}"),
                        _copy_figures({k: figures[k] for k in order}, out), out)
    from speechvq.evaluation.report.prior import prior_md
    return md + prior_md(g, out)


register_renderer("video", Renderer(KINDS, render))
