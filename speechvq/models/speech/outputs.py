"""What the speech VQ-VAE's step function logs to metrics.jsonl, each name defined once.

`step_metrics` turns a `VQVAEOutput` (`speechvq.models.speech.vqvae`) into the step function's
metrics dict of the shared contract (`speechvq.models.outputs`): the WaveNet NLL (nats and bits
per sample), the VQ loss, the log-mel head's L1 loss and the batch's codebook health.
"""

from __future__ import annotations

from speechvq.models.outputs import BATCH_CODEBOOK, LOSS, VQ_LOSS, Metric, codebook_metrics

NLL = Metric("nll", "WaveNet NLL (nats/sample)", "lower", legend="WaveNet NLL, nats/sample")
BITS_PER_SAMPLE = Metric("bits_per_sample", "bits per sample", "lower")
MEL_LOSS = Metric("mel_loss", "mel L1 loss", "lower", legend="mel head, L1 of log-mel")
STEP_METRICS = (NLL, BITS_PER_SAMPLE, VQ_LOSS, MEL_LOSS, *BATCH_CODEBOOK)
TRAINING = (LOSS, *STEP_METRICS)  # a metrics.jsonl record's fields beside the Trainer's own


def step_metrics(out) -> dict:
    """The metrics dict of a speech step, detached.

    Args:
        out: a `VQVAEOutput`.
    Returns:
        {name: () tensor} in `STEP_METRICS` order.
    """
    metrics = {NLL.name: out.nll, BITS_PER_SAMPLE.name: out.bits_per_sample,
               VQ_LOSS.name: out.vq_loss, MEL_LOSS.name: out.mel_loss,
               **codebook_metrics(out.stats)}
    return {k: v.detach() for k, v in metrics.items()}
