"""Evaluation. Results files and the report are shared (`results`, `report`); speech metrics
live in `speechvq.evaluation.speech`:

- `speechvq.evaluation.speech.units`: code-to-phone mapping accuracy (van den Oord et al. 2017), phone
  and cluster purity and PNMI (Hsu et al. 2021, fairseq ``measure_teacher_quality.py``),
  perplexity, codes used, ZeroSpeech 2019 bitrate (Dunbar et al. 2019), the per-system report,
  and re-exports of the units-file helpers (`speechvq.data.codes`) and the baselines (`baselines`:
  majority phone, uniform random codes, MFCC+deltas k-means).
- `speechvq.evaluation.speech.abx`: ABX within and across speakers as the ZeroSpeech tool
  computes it (Schatz et al. 2013; libri-light; ABX2, Hallap et al. 2023) with the batched DTW
  of `speechvq.evaluation.speech.dtw`; `abx_export` writes the tool's inputs.
- `speechvq.evaluation.speech.mcd`: mel-cepstral distortion (Kubichek 1993) from all-pass warped
  mel-cepstra of a smoothed STFT envelope.

Every function here is pure (arrays in, numbers out); reading models and data dirs is the CLI's
and the recipes' business.
"""
