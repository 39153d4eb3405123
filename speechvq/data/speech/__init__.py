"""Speech data: Kaldi data dirs, alignments, corpus preparers, the audio dump and its windows."""
