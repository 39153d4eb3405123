"""Image data: datasets -> one uint8 dump per split -> step-indexed training batches.

- `dump`: the dump format (``images.npy`` NHWC uint8, memory-mapped; ``labels.npy``,
  ``classes.txt``, ``info.json``), written whole or not at all.
- `sources`: MNIST (IDX), CIFAR-10 (binary version) and image folders (ImageNet layout).
- `builtin`: the built-in images (digits from matplotlib's fonts over photos and noise).
- `batches`: the training batches, a pure function of (seed, step), and validation batches.
"""
