"""Autoregressive priors over the codes of a trained VQ-VAE (van den Oord et al. 2017, section
4): `video` holds the prior over video codes, causal in time."""
