"""Video data: clips -> one contiguous uint8 dump per split -> step-indexed training windows.

- `dump`: the dump format (``clips.npy`` (N, T, H, W, C) uint8, memory-mapped; ``clips.txt``,
  ``info.json``), written whole or not at all.
- `builtin`: the built-in moving glyphs (Moving-MNIST style, made offline from a seed).
- `sources`: Moving MNIST's published ``.npy`` and folders of numbered frames.
- `batches`: the training windows, a pure function of (seed, step), and validation batches.
"""
