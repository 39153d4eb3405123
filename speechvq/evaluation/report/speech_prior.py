"""The speech report's prior part: a speech prior evaluated into the VQ-VAE's exp dir.

``speechvq evaluate prior --exp EXP --alignments ...`` writes ``EXP/eval/prior_<split>.json``;
this shows its bits-per-code table (`speechvq.evaluation.report.prior.prior_md`), then the
phone-bigram perplexity of the prior's samples and continuations beside the code bigram's, the
unigram's and real speech's (`speechvq.evaluation.speech.prior_samples`, report keys
``prior.samples.phone_bigram_ppl.<source>`` and ``prior.continuation.phone_bigram_ppl.<source>``),
and log-mel spectrograms of the first sampled and the first continued utterance that ``speechvq
sample`` wrote to ``EXP/samples/prior/`` and ``EXP/samples/continuation/`` (the mini recipe's
stage 5 puts them there).
"""

from __future__ import annotations

from pathlib import Path

from speechvq.evaluation.report.core import Gathered, figure_links, source_line

SAMPLE_DIRS = (("prior", "a sample of the prior"),
               ("continuation", "a continuation (first second given)"))
SOURCE_LABELS = {"prior": "the prior", "code_bigram": "code bigram", "unigram": "code unigram",
                 "real": "real test speech"}


def _cell(block: dict, source: str) -> str:
    """A perplexity, with its 95 % interval when the result has one."""
    value = block.get("phone_bigram_ppl", {}).get(source)
    if value is None:
        return ""
    ci = block.get("ci95", {}).get("phone_bigram_ppl", {}).get(source)
    return f"{value:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")


def _ppl_md(blocks: dict, src: dict | None) -> list[str]:
    samples, cont = blocks["samples"], blocks.get("continuation", {})
    ppl_s = samples["phone_bigram_ppl"]
    draws = samples.get("draws_per_utterance", 1)
    utts = samples.get("n_utterances", samples["n_sequences"])
    lines = ["## Prior: speech samples read as phones", "",
             f"Codes -> phones with the code-to-phone map fitted on the training alignments, "
             f"runs collapsed, SIL dropped, scored by a phone bigram "
             f"({samples.get('phone_bigram_smoothing', 'add-one')} smoothing) fitted on the "
             f"training phones.ctm: perplexity, the closer to real speech's the better. "
             f"{draws} sequence{'s' if draws > 1 else ''} per source and test utterance "
             f"({utts} utterances), each with that utterance's length; real speech: each "
             f"utterance once; prior temperature {samples.get('temperature', 1.0):g}. "
             f"Continuations: the first {cont.get('prompt_codes', '?')} codes of "
             f"{cont.get('n_utterances', cont.get('n_sequences', '?'))} test utterances given, "
             f"the rest drawn and scored. In brackets: 95 % bootstrap intervals over the test "
             f"utterances.",
             "", "| codes from | samples | continuations |", "|---|---:|---:|"]
    for s, label in SOURCE_LABELS.items():
        if s in ppl_s:
            lines.append(f"| {label} | {_cell(samples, s)} | {_cell(cont, s)} |")
    sil, rate = samples.get("sil_share"), samples.get("phones_per_second")
    if sil and rate:  # how each source begins, pauses and ends: silence, and phone changes
        lines += ["", "Samples read as phones: " + "; ".join(
            f"{SOURCE_LABELS[s]} {100 * sil[s]:.1f} % SIL codes, {rate[s]:.1f} phones/s"
            for s in SOURCE_LABELS if s in sil and s in rate) + "."]
    real = ppl_s.get("real")
    if real is not None and "prior" in ppl_s and "code_bigram" in ppl_s:
        closer = abs(ppl_s["prior"] - real) < abs(ppl_s["code_bigram"] - real)
        lines += ["", "The prior's samples are " + ("closer to" if closer else "further from")
                  + " real speech's perplexity than the code bigram's"
                  + ("." if closer else ": the code bigram wins.")]
    return lines + ["", source_line(src), ""]


def speech_prior_md(g: Gathered, out: Path) -> list[str]:
    """The prior sections of the speech report ([] when no prior was evaluated into it)."""
    from speechvq.evaluation import figures as fig
    from speechvq.evaluation.report.prior import prior_md

    blocks = g.report.get("prior") or {}
    if not blocks:
        return []
    md = prior_md(g, out)
    if "phone_bigram_ppl" in (blocks.get("samples") or {}):
        md += _ppl_md(blocks, g.report["sources"].get("prior.samples"))
    wavs = [(caption, g.exp / "samples" / d / "sample_000.wav") for d, caption in SAMPLE_DIRS]
    png = fig.wav_spectrograms(wavs, fig.data_config(g.exp / "config.yaml"),
                               out / "spectrograms_prior.png",
                               "Log-mel spectrograms of speech-prior samples (log-mel head + "
                               "Griffin-Lim)")
    if png:
        md += ["Spectrograms: " + ", ".join(f"`samples/{d}/sample_000.wav` ({c})"
                                            for d, c in SAMPLE_DIRS) + ".", "",
               *figure_links([png]), ""]
    return md
