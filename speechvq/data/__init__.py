"""Data of every task: corpora -> files on disk -> step-indexed training batches.

- `speechvq.data.speech`: Kaldi data dirs (`kaldi`, with `tables` for the line format and
  `alignments` for phone alignments), corpus preparers (`corpora`), the audio dump (`dump`,
  `dumpfile`), utterance readers (`utterances`) and training windows (`batches`).
- `speechvq.data.builtin`: the built-in speech corpus synthesised with eSpeak NG, apart from the
  Kaldi I/O it writes through.
- `speechvq.data.codes`: units text I/O (Kaldi-style, fairseq ``.km``, GSLM).
"""
