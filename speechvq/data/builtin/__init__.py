"""The built-in speech corpus: sentences (`text`), eSpeak NG synthesis (`synth`) and the corpus
plan and cache (`corpus`, behind `speechvq prepare builtin`)."""
