#!/usr/bin/env bash
# The whole speechvq pipeline on the built-in corpus, on CPU, in minutes.
#
#   bash recipes/mini/run.sh                        # stages 0-5
#   bash recipes/mini/run.sh --stage 3 --stop-stage 3
#   bash recipes/mini/run.sh --corpus-dir /path/to/prepared/kaldi/dir   # your own data
#
# Stages: 0 prepare the built-in corpus, 1 dump, 2 train, 3 encode + evaluate units,
# 4 convert test sentences to training speakers, 5 report. Each stage skips finished work.
set -euo pipefail
log() { echo "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

stage=0            # first stage to run
stop_stage=100     # last stage to run
nj=2               # parallel jobs for the dump
size=default       # built-in corpus size: tiny, default or large
corpus_dir=        # a prepared Kaldi data dir (e.g. from `speechvq prepare folder`) instead of the built-in corpus
train_config=conf/train.yaml
train_args=        # extra key=value overrides for training, e.g. "train.max_steps=100"
exp=exp/mini       # experiment dir
n_convert=6        # source utterances converted per source split (seen and unseen speakers)
n_wavenet=2        # of which this many also go through the (slow on CPU) WaveNet
help_message="Usage: $0 [options]; options are --name value, e.g. --stage 2 --stop-stage 3"

cd "$(dirname "${BASH_SOURCE[0]}")"   # work inside the recipe, from any current directory
. ../../tools/parse_options.sh

if [ -n "${corpus_dir}" ]; then
  corpus_dir=$(cd "${corpus_dir}" && pwd)
  train_data=${corpus_dir}
  eval_sets=""
  log "Training on ${corpus_dir}: unit and conversion scoring need the built-in corpus's alignments and parallel sentences; stages 3-4 are skipped"
else
  train_data=data/train
  eval_sets="test test_unseen"
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ] && [ -z "${corpus_dir}" ]; then
  log "Stage 0: prepare the built-in corpus (size=${size}) in data/"
  speechvq prepare builtin data --size "${size}" --nj "${nj}"
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: dump audio for training"
  speechvq dump "${train_data}" dump/train --nj "${nj}"
  for split in ${eval_sets}; do
    speechvq dump "data/${split}" "dump/${split}" --nj "${nj}"
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "Stage 2: train ${exp}"
  # shellcheck disable=SC2086
  speechvq train --config "${train_config}" --data dump/train --exp "${exp}" ${train_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: encode and evaluate units"
  for split in ${eval_sets}; do
    speechvq encode --model "${exp}" --data "dump/${split}" --out "${exp}/units/${split}.txt"
    speechvq evaluate units --model "${exp}" --data "dump/${split}" --fit-on dump/train \
      --name "${split}"
  done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ -n "${eval_sets}" ]; then
  log "Stage 4: convert test sentences to training speakers who also read them"
  targets=$(speechvq convert --model "${exp}" --list-speakers --data data/test | head -n 2 | paste -sd, -)
  for split in test test_unseen; do
    speechvq convert --model "${exp}" --data "data/${split}" --speakers "${targets}" \
      --max-utts "${n_convert}" --head mel --out "${exp}/convert/${split}_mel"
    speechvq convert --model "${exp}" --data "data/${split}" --speakers "${targets}" \
      --max-utts "${n_wavenet}" --head wavenet --out "${exp}/convert/${split}_wavenet"
    speechvq evaluate conversion --model "${exp}" --data "${exp}/convert/${split}_mel" \
      --ref data/test --train data/train --name "${split}_mel"
  done
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
