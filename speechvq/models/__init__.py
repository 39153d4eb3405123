"""Models: the vector quantiser every task shares (`quantizer`) and each task's networks
(`speechvq.models.speech`: encoders, WaveNet and log-mel decoders, the speech VQ-VAE)."""
