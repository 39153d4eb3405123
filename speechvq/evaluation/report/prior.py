"""The prior task's report: a prior's bits per code beside the n-gram baselines, and what its
class-conditional samples look like to a classifier.

Renders the blocks `speechvq.evaluation.report.core` gathers from ``eval/prior_*.json``
(`speechvq.evaluation.prior`), in DESIGN.md's keys ``prior.<split>.<system>.bits_per_code``,
``prior.samples.*`` and ``prior.classifier.*``: one table per scored split (systems x bits/code,
and bits/dim for a categorical image decoder, with 95 % intervals; also as CSV and LaTeX), the
prior's gain over the bigram, the sample-quality table and the sample grid (one row per class),
copied into the report folder. `prior_md` is also what the image report shows when the prior
was evaluated into the image exp dir (``evaluate prior --exp``).
"""

from __future__ import annotations

from pathlib import Path

from speechvq.evaluation.prior import (BITS_PER_CODE, BITS_PER_DIM, CLASS_MATCH, SYSTEM_LABELS,
                                       SYSTEMS, gain_line, information_text)
from speechvq.evaluation.report.core import (Gathered, Renderer, figure_links,
                                             register_renderer, source_line, training_md)
from speechvq.evaluation.report.image import _copy_figures
from speechvq.evaluation.report.tables import Table, export_table
from speechvq.models.outputs import LOSS

KINDS = ("prior",)
SAMPLE_BLOCKS = ("samples", "classifier")


def _nll_md(split: str, block: dict, src: dict | None, out: Path) -> list[str]:
    cols = [m for m in (BITS_PER_CODE, BITS_PER_DIM) if m.name in block["prior"]]
    rows = []
    for s in SYSTEMS:
        cells = []
        for m in cols:
            ci = block[s].get("ci95", {}).get(m.name)
            cells.append(m.format(block[s].get(m.name))
                         + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
        rows.append([SYSTEM_LABELS[s], *cells])
    shape = "x".join(map(str, block["grid"])) if block.get("grid") else "1-D sequences of"
    what = (f"{block['n_items']} {block['modality']} items, {block['n_codes']} codes "
            f"({shape} codes of K = {block['codebook_size']}), {block['arch']} prior")
    table = Table(f"prior_{split}", f"Prior negative log-likelihood on {split}: {what}",
                  ["system", *(m.header for m in cols)], rows, strong={0},
                  notes=[f"Baselines counted on the prior's {block['n_fit_items']} training "
                         f"items; bigram weight {block['bigram_weight']:.2f}, tuned on the "
                         f"{block['n_tune_items']} held-out training items.",
                         "Brackets: 95 % bootstrap intervals over items."])
    info = block.get("class_information")
    uses = [] if not info else [
        f"How much the prior uses its condition ({info['n_items']} scored items, each under "
        f"every condition): the true one saves {info['bits_saved_per_item']:.2f} bits per item "
        f"against a wrong one (a likelihood ratio, unbounded); its posterior over the "
        f"conditions holds {information_text(info)} a condition carries; as a classifier of "
        f"the codes (the condition under which they are likeliest) the prior is "
        f"{100 * info['prior_classifier_accuracy']:.1f} % accurate (chance "
        f"{100 * info['chance']:.1f} %).", ""]
    return [f"## Prior: {split}", "", what + ".", "", *export_table(out, table), "",
            gain_line(block) + ".", "", *uses, source_line(src), ""]


def _samples_md(samples: dict, classifier: dict, src: dict | None,
                figures: list[str]) -> list[str]:
    rows = [["class-conditional samples", CLASS_MATCH.format(samples["class_match"])],
            ["chance", CLASS_MATCH.format(samples["chance"])],
            ["real test images", CLASS_MATCH.format(classifier["real_test_accuracy"])],
            ["VQ-VAE reconstructions of them", CLASS_MATCH.format(
                classifier["reconstruction_accuracy"])]]
    lines = ["## Prior: samples", "",
             f"{samples['n_images']} samples ({samples['samples_per_class']} per class, "
             f"temperature {samples['temperature']:g}"
             + (f", guidance {samples['guidance']:g}" if samples.get("guidance") else "")
             + ") decoded by the VQ-VAE and labelled by a "
             f"CNN trained on the real training images; % labelled as the class asked for "
             f"(real images and reconstructions: the classifier's accuracy, the ceiling).", "",
             "| images | % labelled as their class |", "|---|---:|",
             *(f"| {a} | {b} |" for a, b in rows), "", source_line(src), ""]
    return lines + figure_links(figures) + ([""] if figures else [])


def prior_md(g: Gathered, out: Path) -> list[str]:
    """The prior sections of a report: one per scored split, then the samples."""
    blocks = g.report.get("prior", {})
    md: list[str] = []
    for split, block in blocks.items():
        if split not in SAMPLE_BLOCKS and isinstance(block.get("prior"), dict):
            md += _nll_md(split, block, g.report["sources"].get(f"prior.{split}"), out)
    if "samples" in blocks and "classifier" in blocks and "class_match" in blocks["samples"]:
        figures = g.details.get("prior", {}).get("samples", {}).get("figures", {})
        md += _samples_md(blocks["samples"], blocks["classifier"],
                          g.report["sources"].get("prior.samples"),
                          _copy_figures(figures, out))
    return md


def render(g: Gathered, out: Path) -> list[str]:
    """The prior report: its training run (with curves), then `prior_md`."""
    from speechvq.evaluation import figures as fig
    from speechvq.tasks.prior import TRAINING

    md = training_md(g, lambda run, stem: fig.training_curves(run.records, out / f"{stem}.png",
                                                               (LOSS, *TRAINING), ()), TRAINING)
    return md + prior_md(g, out)


register_renderer("prior", Renderer(KINDS, render))
