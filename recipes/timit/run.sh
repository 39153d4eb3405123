#!/usr/bin/env bash
# The paper's phone study on TIMIT: K = 128 codes at 25 Hz, scored against the TIMIT phone
# labels folded 61 -> 39 (Lee and Hon 1989) with the code-to-phone mapping, beside baselines.
#
#   bash recipes/timit/run.sh --timit /data/TIMIT                          # stages 0-5
#   bash recipes/timit/run.sh --timit /data/TIMIT --stage 2 --stop-stage 2 --ngpu 1
#   bash recipes/timit/run.sh --stage 3 --nj 8 --cmd "srun --ntasks=1"     # jobs on a cluster
#
# Stages: 0 prepare TIMIT into data/ (train, dev: Kaldi's 50 dev speakers, test_core: the
# 24-speaker core test set, test; SA sentences left out; phones.ctm from the .PHN files, folded
# to 39 phones + SIL), 1 dump train and --eval-sets, 2 train (conf/train.yaml: 640x
# downsampling = 25 Hz, K = 128), 3 encode --eval-sets and score the units: the code-to-phone
# mapping and the MFCC k-means baseline are fitted on train, scored on --eval-sets (default the
# core test set) beside the majority and random baselines, 4 convert a few core-test sentences to training speakers (listening
# samples; TIMIT's SI/SX sentences give no parallel target to score against), 5 report.
# Each stage skips finished work. Paths given as options are relative to the directory you run
# from, except that a relative --train-config is looked up in this recipe's folder first.
set -euo pipefail

stage=0            # first stage to run
stop_stage=100     # last stage to run
timit=             # the TIMIT corpus (the folder holding TRAIN/ and TEST/, any case); stage 0
nj=4               # parallel jobs: dump, encode, evaluate units (encoding), convert
cmd=               # run each job as `${cmd} speechvq ...`, e.g. "srun --ntasks=1"; default: local
ngpu=1             # GPUs for training (> 1: torchrun); 0 = CPU everywhere
workdir=           # where data/ dump/ exp/ go (default: this recipe's folder)
train_config=conf/train.yaml  # the phone study's model (K = 128, 25 Hz)
train_args=        # extra key=value overrides for training, e.g. "train.max_steps=100000"
exp=exp/timit      # experiment dir (relative to --workdir)
eval_sets=test_core  # splits scored in stage 3 (e.g. "test_core dev"); the mapping is fitted on train
head=auto          # conversion decoder: auto (WaveNet on a GPU), wavenet, mel (needs a mel head)
n_convert=4        # core-test sentences converted in stage 4 (0 = skip the stage)
n_targets=2        # training speakers each sentence is converted to
abx_triplets=5000  # ABX triplets sampled per condition in the unit evaluation
help_message="Usage: $0 --timit DIR [options]; options are --name value, e.g. --stage 2 --nj 8"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

# Resolve user paths against the directory the recipe was started from, then work in --workdir.
train_config=$(resolve_conf train-config "${train_config}")
if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  corpus_folder timit "the TIMIT corpus (the folder holding TRAIN/ and TEST/, LDC93S1)"
fi
check_ngpu   # sets ${device} and ${launcher[@]}; --ngpu 0 adds train.device=cpu to ${train_args}
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  if [ -f data/.done ] && [ "$(cat data/.done)" = "timit=${timit}" ]; then
    log "Stage 0: data/ was prepared from ${timit}; skipping"
  else
    log "Stage 0: prepare ${timit} in $(pwd)/data (61 -> 39 phones)"
    speechvq prepare timit "${timit}" data
    echo "timit=${timit}" > data/.done
  fi
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: dump audio at 16 kHz"
  for split in train ${eval_sets}; do
    if [ ! -d "data/${split}" ]; then
      echo "$0: error: data/${split} is missing: this TIMIT tree has none of its speakers" \
           "(dev and test_core are fixed speaker lists); choose --eval-sets among:" \
           "$(ls data | tr '\n' ' ')" >&2
      exit 2
    fi
    speechvq dump "data/${split}" "dump/${split}" --nj "${nj}"   # a complete dump is skipped
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  # No --valid: the model's speaker embeddings cover the training speakers only, and TIMIT's
  # dev and test speakers are others; dev is there to be scored (--eval-sets "test_core dev").
  log "Stage 2: train ${exp} on ${ngpu} GPU(s)"
  # Resumes from ${exp}/checkpoints/last.pt; a finished run says so and returns at once.
  # shellcheck disable=SC2086
  "${launcher[@]}" train --config "${train_config}" --data dump/train --exp "${exp}" \
    ${train_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: encode and score units on ${eval_sets} (mapping fitted on train)"
  for split in ${eval_sets}; do
    encode_units "${split}" --device "${device}" "${jobs[@]}"
  done
  score_units "${eval_sets}" --device "${device}" "${jobs[@]}"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ "${n_convert}" -gt 0 ]; then
  log "Stage 4: convert ${n_convert} core-test sentences to ${n_targets} training speakers"
  targets=$(speechvq convert --model "${exp}" --list-speakers | sed -n "1,${n_targets}p" | paste -sd, -)
  # convert keeps the wavs already in --out; only missing conversions are made
  speechvq convert --model "${exp}" --data dump/test_core --speakers "${targets}" \
    --max-utts "${n_convert}" --per-speaker 1 --head "${head}" --device "${device}" \
    --out "${exp}/convert/test_core" "${jobs[@]}"
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
