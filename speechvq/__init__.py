"""speechvq: unsupervised discrete speech units and voice conversion with VQ-VAEs.

After van den Oord, Vinyals and Kavukcuoglu, *Neural Discrete Representation Learning*
(NeurIPS 2017, arXiv:1711.00937).
"""

__version__ = "0.1.0"
