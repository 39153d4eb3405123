#!/usr/bin/env bash
# The whole speechvq pipeline on the built-in corpus, on CPU, in minutes.
#
#   bash recipes/mini/run.sh                        # stages 0-6
#   bash recipes/mini/run.sh --stage 3 --stop-stage 3
#   bash recipes/mini/run.sh --corpus-dir /path/to/prepared/kaldi/dir   # your own data
#   bash recipes/mini/run.sh --workdir /scratch/mini   # data/ dump/ exp/ there, not in recipes/mini
#
# Stages: 0 prepare the built-in corpus, 1 dump, 2 train, 3 encode + evaluate units,
# 4 convert test sentences to training speakers, 5 the speech prior (code dumps, train, evaluate,
# sample), 6 report. Each stage skips finished work.
# Paths given as options are relative to the directory you run from, except that a relative
# --train-config is looked up in this recipe's folder first (e.g. conf/train.yaml).
set -euo pipefail

stage=0            # first stage to run
stop_stage=100     # last stage to run
nj=2               # parallel jobs: prepare, dump, encode, evaluate units (encoding), convert
cmd=               # run each encode/convert job as `${cmd} speechvq ...`, e.g. "srun --ntasks=1"; default: local
size=default       # built-in corpus size: tiny, default or large
corpus_dir=        # a prepared Kaldi data dir (e.g. from `speechvq prepare folder`) instead of the built-in corpus
workdir=           # where data/ dump/ exp/ go (default: this recipe's folder)
train_config=conf/train.yaml      # stage 2a: encoder + codebook + log-mel head (the codes)
wavenet_config=conf/wavenet.yaml  # stage 2b, on top of train_config: the WaveNet on the frozen codes
train_args=        # extra key=value overrides for both trainings, e.g. "train.max_steps=100"
exp=exp/mini       # experiment dir (relative to --workdir)
n_convert=6        # source sentences converted per source split (seen and unseen speakers)
n_targets=2        # training speakers each source is converted to (who read the same sentence)
n_wavenet=2        # of which this many also go through the (slow on CPU) WaveNet; 0 = none
abx_triplets=5000  # ABX triplets sampled per condition in the unit evaluation
prior_config=conf/prior.yaml      # stage 5: the causal WaveNet prior over the codes ("" = no prior)
prior_args=        # extra key=value overrides for the prior's training, e.g. "train.max_steps=100"
prior_nproc=2      # stage 5: processes that train the prior on the CPU (torchrun DDP, one thread each; 1 = one process, on the default device)
n_prior_samples=2  # stage 5: utterances sampled from the prior, and as many continuations
prior_temperature=1.0  # stage 5: the prior's sampling temperature (1: its own distribution; tools/tune_prior_temperature.py scores others on held-out training utterances, README "The speech prior")
help_message="Usage: $0 [options]; options are --name value, e.g. --stage 2 --stop-stage 3"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

# Resolve user paths against the directory the recipe was started from, then work in --workdir.
train_config=$(resolve_conf train-config "${train_config}")
wavenet_config=$(resolve_conf wavenet-config "${wavenet_config}")
if [ -n "${prior_config}" ]; then prior_config=$(resolve_conf prior-config "${prior_config}"); fi
if ! [[ "${prior_nproc}" =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: error: --prior-nproc takes a number of processes (1 or more), got '${prior_nproc}'" >&2
  exit 2
fi
if [ -n "${corpus_dir}" ]; then
  if [ ! -d "${corpus_dir}" ]; then
    echo "$0: error: --corpus-dir ${corpus_dir} is not a folder; pass a prepared Kaldi data dir" >&2
    exit 2
  fi
  corpus_dir=$(cd "${corpus_dir}" && pwd)
fi
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ -n "${corpus_dir}" ]; then
  train_data=${corpus_dir}
  valid_data=""
  eval_sets=""
  log "Training on ${corpus_dir}: unit and conversion scoring need the built-in corpus's alignments and parallel sentences; stage 3 only encodes the training data, stage 4 is skipped"
else
  train_data=data/train
  valid_data=data/dev   # held-out readings by the training speakers: validation, best.pt
  eval_sets="test test_unseen"
fi

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ] && [ -z "${corpus_dir}" ]; then
  log "Stage 0: prepare the built-in corpus (size=${size}) in $(pwd)/data"
  speechvq prepare builtin data --size "${size}" --nj "${nj}"   # cached: a rerun only copies
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: dump audio for training"
  speechvq dump "${train_data}" dump/train --nj "${nj}"   # a complete dump is skipped
  if [ -n "${valid_data}" ]; then
    speechvq dump "${valid_data}" dump/valid --nj "${nj}"
  fi
  for split in ${eval_sets}; do
    speechvq dump "data/${split}" "dump/${split}" --nj "${nj}"
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  # Each run resumes from its checkpoints/last.pt; a finished run says so and returns at once.
  # With the built-in corpus both runs validate on dump/valid (conf: train.valid_every) and keep
  # the best checkpoint as checkpoints/best.pt; the later stages use last.pt.
  valid=(--valid dump/valid)          # an option, before --exp
  no_valid=""                         # an override, among the key=value arguments
  if [ -z "${valid_data}" ]; then
    valid=()
    no_valid=train.valid_every=0
  fi
  log "Stage 2a: train the codes through the log-mel head: ${exp}_codes"
  # shellcheck disable=SC2086
  speechvq train --config "${train_config}" --data dump/train "${valid[@]}" --exp "${exp}_codes" \
    ${no_valid} ${train_args}
  log "Stage 2b: train the WaveNet on the frozen codes of ${exp}_codes: ${exp}"
  # shellcheck disable=SC2086
  speechvq train --config "${train_config}" --config "${wavenet_config}" --data dump/train \
    "${valid[@]}" --exp "${exp}" train.init_from="${exp}_codes" ${no_valid} ${train_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -n "${corpus_dir}" ]; then
  log "Stage 3: encode the training data (no alignments to score units against)"
  encode_units train "${jobs[@]}"
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -n "${eval_sets}" ]; then
  log "Stage 3: encode and evaluate units"
  for split in ${eval_sets}; do
    encode_units "${split}" "${jobs[@]}"
  done
  score_units "${eval_sets}" "${jobs[@]}"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ -n "${eval_sets}" ]; then
  log "Stage 4: convert test sentences to training speakers who also read them"
  if [ ! -d data/test_reread ]; then
    echo "$0: error: data/test_reread (the targets' second readings, for the MCD topline) is" \
         "missing: data/ was prepared by an older speechvq; rerun stage 0 (--stage 0)" >&2
    exit 2
  fi
  conv_dirs=(); conv_names=""  # conversion dirs whose scores are missing or stale
  for split in test test_unseen; do
    # Sources spread over speakers and sentences; each goes to the first ${n_targets} training
    # speakers who read the same sentence in data/test (a real parallel target for the scores).
    # convert keeps the wavs already in --out; only missing conversions are made.
    speechvq convert --model "${exp}" --data "data/${split}" --parallel-to data/test \
      --n-targets "${n_targets}" --per-speaker 2 --max-utts "${n_convert}" --head mel \
      --out "${exp}/convert/${split}_mel" "${jobs[@]}"
    heads=mel
    if [ "${n_wavenet}" -gt 0 ]; then
      heads="mel wavenet"
      speechvq convert --model "${exp}" --data "data/${split}" --parallel-to data/test \
        --n-targets "${n_targets}" --per-speaker 2 --max-utts "${n_wavenet}" --head wavenet \
        --out "${exp}/convert/${split}_wavenet" "${jobs[@]}"
    fi
    for head in ${heads}; do
      result=${exp}/eval/conversion_${split}_${head}.json
      # kept if newer than the model and the conversions (wav/ changes only when convert adds
      # some) and scored against the second readings (older recipes did not pass test_reread)
      if newer_than_model "${result}" && [ "${result}" -nt "${exp}/convert/${split}_${head}/wav" ] \
          && grep -q test_reread "${result}"; then
        log "${result} is newer than the model and the conversions: kept"
      else
        conv_dirs+=("${exp}/convert/${split}_${head}")
        conv_names="${conv_names:+${conv_names},}${split}_${head}"
      fi
    done
  done
  if [ ${#conv_dirs[@]} -gt 0 ]; then
    # one call for every dir: the speaker classifier and the training codes are fitted once;
    # data/test_reread: the targets' second readings, for the MCD topline
    speechvq evaluate conversion --model "${exp}" --data "${conv_dirs[@]}" \
      --ref data/test data/test_reread --train data/train --name "${conv_names}"
  fi
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ] && [ -n "${eval_sets}" ] && [ -n "${prior_config}" ]; then
  log "Stage 5: the speech prior over the codes of ${exp}: ${exp}_prior"
  for split in train test; do  # code dumps (codes.npy + index.tsv) the prior trains on and is scored on
    encode_codes "${split}" "${exp}/codes/${split}"
  done
  # Validates on the held-out 10 % of the training utterances (data.held_out) and keeps the best
  # as best.pt: the prior memorises the training codes within minutes. One thread per process:
  # its tensors are small, and two spin-waiting threads on a busy 2-core machine ran 3x slower
  # than one; so the cores are used by ${prior_nproc} DDP processes, each taking its share of
  # every batch (README "The speech prior": 1,200 bf16 steps in less time than 600 fp32 steps
  # took in one process).
  ddp_launcher prior_launcher "${prior_nproc}"
  if [ "${prior_nproc}" -gt 1 ]; then prior_args="train.device=cpu ${prior_args}"; fi
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 "${prior_launcher[@]}" train --config "${prior_config}" \
    --data "${exp}/codes/train" --exp "${exp}_prior" --threads 1 ${prior_args}
  # Wavs through the VQ-VAE's log-mel head + Griffin-Lim, 5 s each (the report shows the first),
  # drawn on one thread each beside the scoring below, which is mostly one thread's sampling;
  # their output goes to ${exp}/samples/log/*.log.
  mkdir -p "${exp}/samples/log"
  wait_for_sample() {  # wait_for_sample KIND PID: its status; its log's last line, or all of it
    local status=0
    wait "$2" || status=$?
    if [ "${status}" -ne 0 ]; then
      echo "$0: error: speechvq sample ($1) failed; its output:" >&2
      cat "${exp}/samples/log/$1.log" >&2
      exit "${status}"
    fi
    tail -n 1 "${exp}/samples/log/$1.log"
  }
  OMP_NUM_THREADS=1 speechvq sample --model "${exp}_prior" --checkpoint best.pt \
    -n "${n_prior_samples}" --length 250 --temperature "${prior_temperature}" \
    -o "${exp}/samples/prior" > "${exp}/samples/log/prior.log" 2>&1 &
  sample_prior=$!
  OMP_NUM_THREADS=1 speechvq sample --model "${exp}_prior" --checkpoint best.pt \
    -n "${n_prior_samples}" --length 250 --temperature "${prior_temperature}" \
    --prompt "${exp}/codes/test" --prompt-length 50 -o "${exp}/samples/continuation" \
    > "${exp}/samples/log/continuation.log" 2>&1 &
  sample_continuation=$!
  result=${exp}/eval/prior_test.json
  if [ -e "${result}" ] && [ "${result}" -nt "${exp}_prior/checkpoints/best.pt" ]; then
    log "${result} is newer than the prior: kept"
  else
    # bits per code beside uniform/unigram/bigram; samples and continuations read as phones
    speechvq evaluate prior --model "${exp}_prior" --checkpoint best.pt --data "${exp}/codes/test" \
      --alignments data/train --exp "${exp}" --name test --temperature "${prior_temperature}"
  fi
  wait_for_sample prior "${sample_prior}"
  wait_for_sample continuation "${sample_continuation}"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  log "Stage 6: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
