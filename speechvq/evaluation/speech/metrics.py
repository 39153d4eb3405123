"""Every speech evaluation metric, defined once: its name, label, better direction and format.

The unit metrics of ``eval/units_*.json`` (`UNITS`, the columns of the units table: mapping
accuracy of van den Oord et al. 2017, purity and PNMI of Hsu et al. 2021, the ZeroSpeech 2019
bitrate of Dunbar et al. 2019, ABX of Schatz et al. 2013) and the conversion metrics of
``eval/conversion_*.json`` (`CONVERSION`: speaker identification, content, MCD of Kubichek 1993);
`UNIT_FIELDS` and `CONVERSION_FIELDS` name the counts and settings those files hold beside their
metrics. The training log's names live with the model (`speechvq.models.speech.outputs`) and
are imported here. The report, the CLI tables and the figures take their lists from this module;
a number a file holds that is defined nowhere is still shown, under its own name (`undefined`,
`unit_columns`, `conversion_rows`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Mapping

from speechvq.models.outputs import (CODEBOOK, CODES_USED, LOSS, PERPLEXITY, VQ_LOSS, Metric,
                                     by_name)
from speechvq.models.speech.outputs import MEL_LOSS, NLL, TRAINING  # noqa: F401 (re-exported)

LOSS_CURVES = (LOSS, NLL, VQ_LOSS, MEL_LOSS)  # bits per sample is the NLL in other units

CI95 = Metric("ci95", "95 % bootstrap intervals: metric -> [low, high] "
                      "(`speechvq.evaluation.bootstrap`)")

# ----------------------------------------------------------------- units (units.<split>.<system>)

MAPPING_ACCURACY = Metric("mapping_accuracy", "mapping accuracy", "higher", "%", short="map acc")
BITRATE = Metric("bitrate_bps", "bitrate", fmt=".1f", unit="bits/s", short="bits/s")
UNITS = (
    MAPPING_ACCURACY,
    Metric("mapping_accuracy_nosil", "mapping accuracy without SIL", "higher", "%",
           short="no SIL"),
    Metric("phone_purity", "phone purity", "higher", "%", short="ph pur"),
    Metric("cluster_purity", "cluster purity", "higher", "%", short="cl pur"),
    Metric("pnmi", "phone-normalised mutual information", "higher", "%", short="PNMI"),
    PERPLEXITY,
    CODES_USED,
    BITRATE,
    Metric("abx_within", "ABX error within speakers", "lower", "%", short="ABX w"),
    Metric("abx_across", "ABX error across speakers", "lower", "%", short="ABX a"),
    Metric("abx_codes_within", "ABX error within speakers, code embeddings", "lower", "%",
           short="ABXq w"),
    Metric("abx_codes_across", "ABX error across speakers, code embeddings", "lower", "%",
           short="ABXq a"),
)
BITRATE_DEDUP = Metric("bitrate_bps_dedup", "bitrate of the deduplicated units", fmt=".0f",
                       unit="bits/s", short="bits/s (deduplicated)")
CHANCE = Metric("chance", "majority phone share of the frames", fmt="%")
UNIT_FIELDS = (
    BITRATE_DEDUP,
    CHANCE,
    Metric("chance_nosil", "majority phone share of the frames without SIL", fmt="%"),
    Metric("n_frames", "frames scored", fmt="d"),
    Metric("n_phones", "phones in the inventory", fmt="d"),
    Metric("frame_rate_hz", "codes per second", fmt="g", unit="Hz"),
    Metric("codebook_size", "codebook size K", fmt="d"),
    Metric("fit_on", "data the code-to-phone mapping is fitted on ('eval': the scored data)"),
    Metric("abx_n_items", "ABX items (phones in context)", fmt="d"),
    Metric("abx_items", "ABX item span: 'phone' (the centre phone in its context, ZeroSpeech "
                        "ABX2) or 'triphone' (the three phones, libri-light)"),
    *(Metric(f"abx{q}_n_triplets_{c}", f"ABX triplets {c} speakers" + (", codes" if q else ""),
             fmt="d") for q in ("", "_codes") for c in ("within", "across")),
    *(Metric(f"abx{q}_sampled", "ABX scored a seeded sample of the triplets"
             + (", codes" if q else "")) for q in ("", "_codes")),
    CI95,
    # label-free statistics of units files without alignments (``units_unscored.<split>``)
    Metric("n_utterances", "utterances", fmt="d"),
    Metric("hours", "hours of audio", fmt=".2f", unit="h"),
)
BASELINES = ("majority", "random", "mfcc_kmeans")  # the systems `baselines` scores beside a model

# ------------------------------------------------------------- conversion (conversion.<split>)

SPEAKER_ID_HELDOUT = Metric("speaker_id_heldout_accuracy",
                            "speaker-ID accuracy on held-out unconverted audio", "higher", "%",
                            short="spk-ID held out")
CONVERSION = (  # the rows of the conversion table, in order
    SPEAKER_ID_HELDOUT,
    Metric("speaker_id_target", "converted files identified as the target", "higher", "%",
           short="as target"),
    Metric("speaker_id_source", "converted files identified as the source", "lower", "%",
           short="as source"),
    Metric("code_agreement", "code agreement with the source", "higher", "%", short="code agr"),
    replace(MAPPING_ACCURACY, label="mapping accuracy against the source alignment"),
    Metric("mcd_db", "MCD (mel-cepstral distortion), converted vs target reading", "lower",
           ".2f", "dB", short="MCD"),
    Metric("mcd_baseline_db", "MCD baseline, unconverted source vs target", "lower", ".2f", "dB",
           short="MCD base"),
    Metric("mcd_topline_db", "MCD topline", "lower", ".2f", "dB", short="MCD top"),
)
SOURCE_MAPPING_ACCURACY = Metric("mapping_accuracy_source",
                                 "mapping accuracy of the unconverted source", "higher", "%")
CONVERSION_FIELDS = (
    SOURCE_MAPPING_ACCURACY,
    Metric("mapping_fit_on", "data the code-to-phone mapping is fitted on"),
    Metric("mcd_topline", "what the topline compares, with counts"),
    Metric("n_converted", "converted files", fmt="d"),
    Metric("n_seen_sources", "converted files whose source speaker the classifier knows",
           fmt="d"),
    Metric("n_targets_unknown_to_classifier", "target speakers the classifier does not know",
           fmt="d"),
    Metric("n_mcd", "files with an MCD", fmt="d"),
    Metric("n_no_parallel", "files without a parallel target reading", fmt="d"),
    Metric("n_topline", "files with a topline", fmt="d"),
    Metric("speaker_id_heldout_set", "the classifier's held-out unconverted audio"),
    Metric("speaker_id_n_heldout", "held-out utterances", fmt="d"),
    Metric("speaker_id_n_train", "classifier training utterances", fmt="d"),
    Metric("speaker_id_n_speakers", "speakers the classifier knows", fmt="d"),
    CI95,
)

DEFINED_UNITS = by_name(UNITS, UNIT_FIELDS, CODEBOOK)
DEFINED_CONVERSION = by_name(CONVERSION, CONVERSION_FIELDS)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def undefined(blocks: Iterable[Mapping], defined: Mapping[str, Metric]) -> list[Metric]:
    """The numbers in `blocks` that no definition names, as metrics labelled by their own name
    (first-seen order), so that a table shows them rather than drops them."""
    names = dict.fromkeys(k for b in blocks for k, v in b.items()
                          if _number(v) and k not in defined)
    return [Metric(k, k) for k in names]


def unit_columns(block: Mapping, systems: Iterable[str]) -> list[Metric]:
    """The columns of a units table: every `UNITS` metric some system has (even as None: an
    ABX with no within-speaker triplet shows ``n/a``, not nothing), then any number of a system
    that is defined nowhere (not in `UNITS` nor `UNIT_FIELDS`)."""
    rows = [block[s] for s in systems]
    return [m for m in UNITS if any(m.name in r for r in rows)] + \
        undefined(rows, DEFINED_UNITS)


def conversion_rows(m: Mapping) -> list[tuple[Metric, str]]:
    """(metric, note on what it was measured on) for each row of a conversion table: every
    `CONVERSION` metric, then any number of the block that is defined nowhere."""
    notes = {
        "speaker_id_heldout_accuracy": f"{m.get('speaker_id_n_heldout')} utterances, "
                                       f"{m.get('speaker_id_heldout_set')}; "
                                       f"{m.get('speaker_id_n_speakers')} speakers",
        "speaker_id_target": f"{m.get('n_converted')} files"
                             + (f", {m['n_targets_unknown_to_classifier']} to targets the "
                                "classifier does not know (not scored)"
                                if m.get("n_targets_unknown_to_classifier") else ""),
        "speaker_id_source": f"{m.get('n_seen_sources')} with a source speaker the classifier "
                             "knows",
        "code_agreement": "re-encoded audio",
        "mapping_accuracy": "unconverted source: "
                            f"{SOURCE_MAPPING_ACCURACY.show(m.get(SOURCE_MAPPING_ACCURACY.name))}"
                            f"; mapping fitted on {m.get('mapping_fit_on')}",
        "mcd_db": f"{m.get('n_mcd')} files ({m.get('n_no_parallel')} without a parallel "
                  "reading)",
        "mcd_topline_db": str(m.get("mcd_topline") or ""),
    }
    return [(c, notes.get(c.name, "")) for c in (*CONVERSION, *undefined([m], DEFINED_CONVERSION))]
