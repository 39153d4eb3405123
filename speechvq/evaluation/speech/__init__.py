"""Speech evaluation: unit metrics (`units`, `unit_eval`, `baselines`, `abx` with `dtw` and
`abx_export`) and voice-conversion metrics (`conversion`, `mcd`)."""
