"""Corpora -> Kaldi data dirs -> tensors.

`kaldi` reads, writes, validates and repairs Kaldi data dirs (with `tables` for the line format and
`alignments` for phone alignments: CTM, TIMIT .PHN, Praat TextGrid, frame labels); the preparers,
the built-in corpus and the dump build on it.
"""
