"""Speech evaluation: unit metrics (`units`, `unit_eval`, `baselines`, `abx` with `dtw`) and
voice-conversion metrics (`conversion`, `mcd`)."""
