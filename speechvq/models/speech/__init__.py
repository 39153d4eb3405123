"""Speech models of the VQ-VAE (van den Oord et al. 2017, arXiv:1711.00937): the encoders, the
WaveNet and log-mel decoders, and the model that joins them around the shared quantiser."""
