#!/usr/bin/env bash
# The paper's speech VQ-VAE on LibriSpeech: units (scored when MFA alignments are given) and
# voice conversion.
#
#   bash recipes/librispeech/run.sh --librispeech /data/LibriSpeech                 # stages 0-5
#   bash recipes/librispeech/run.sh --librispeech /data/LibriSpeech --alignments /data/mfa
#   bash recipes/librispeech/run.sh --librispeech /data/LibriSpeech \
#       --train-sets "train-clean-100 train-clean-360" --extra-config conf/prior_128x.yaml
#   bash recipes/librispeech/run.sh --stage 3 --nj 16 --cmd "srun --ntasks=1"     # cluster jobs
#
# Stages: 0 prepare --train-sets (one data/train), --dev-set and --test-sets into data/ (phone
# alignments from Montreal Forced Aligner TextGrids when --alignments is given: phones.ctm, 39
# ARPAbet phones + SIL), 1 dump, 2 train (conf/train.yaml), 3 encode
# the dev and test sets and, where they have alignments, score the units (mapping and k-means
# fitted on train: needs train alignments too), 4 convert a few test utterances to training
# speakers (listening samples: LibriSpeech has no parallel sentences to score against), 5 report.
# Each stage skips finished work. Paths given as options are relative to the directory you run
# from, except that a relative --train-config / --extra-config is looked up in this recipe's
# folder first.
set -euo pipefail

stage=0            # first stage to run
stop_stage=100     # last stage to run
librispeech=       # the LibriSpeech/ folder holding the split folders (train-clean-100/, ...); stage 0
alignments=        # Montreal Forced Aligner output (<spk>/<utt>.TextGrid) for phone alignments; stage 0
train_sets=train-clean-100  # training split folder(s), space-separated: combined into data/train
dev_set=dev-clean  # development split, scored in stage 3 (its readers are not training speakers)
test_sets=test-clean  # scored split(s), space-separated
nj=4               # parallel jobs: dump, encode, evaluate units (encoding), convert
cmd=               # run each job as `${cmd} speechvq ...`, e.g. "srun --ntasks=1"; default: local
ngpu=1             # GPUs for training (> 1: torchrun); 0 = CPU everywhere
workdir=           # where data/ dump/ exp/ go (default: this recipe's folder)
train_config=conf/train.yaml  # the paper's speech VQ-VAE (64x downsampling, K = 512)
extra_config=      # a conf applied on top of --train-config, e.g. conf/prior_128x.yaml (the paper's prior setting)
train_args=        # extra key=value overrides for training, e.g. "train.max_steps=100000"
exp=exp/librispeech  # experiment dir (relative to --workdir)
head=auto          # conversion decoder: auto (WaveNet on a GPU), wavenet, mel (needs a mel head)
n_convert=4        # test utterances converted in stage 4, one per reader (0 = skip the stage)
n_targets=2        # training speakers each utterance is converted to
abx_triplets=5000  # ABX triplets sampled per condition in the unit evaluation
help_message="Usage: $0 --librispeech DIR [options]; options are --name value, e.g. --stage 2 --nj 8"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

# Resolve user paths against the directory the recipe was started from, then work in --workdir.
train_config=$(resolve_conf train-config "${train_config}")
configs=(--config "${train_config}")
if [ -n "${extra_config}" ]; then
  configs+=(--config "$(resolve_conf extra-config "${extra_config}")")
fi
if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  corpus_folder librispeech "the LibriSpeech/ folder holding train-clean-100/, dev-clean/, ..."
  if [ -n "${alignments}" ]; then
    if [ ! -d "${alignments}" ]; then
      echo "$0: error: --alignments ${alignments} is not a folder; pass the Montreal Forced" \
           "Aligner output folder (<spk>/<utt>.TextGrid)" >&2
      exit 2
    fi
    alignments=$(cd "${alignments}" && pwd)
  fi
fi
check_ngpu   # sets ${device} and ${launcher[@]}; --ngpu 0 adds train.device=cpu to ${train_args}
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

dev=${dev_set//-/_}          # Kaldi-style dir names: dev-clean -> data/dev_clean
tests=${test_sets//-/_}
eval_sets="${dev} ${tests}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  stamp="librispeech=${librispeech} train=${train_sets} dev=${dev_set} test=${test_sets} alignments=${alignments}"
  if [ -f data/.done ] && [ "$(cat data/.done)" = "${stamp}" ]; then
    log "Stage 0: data/ was prepared from ${stamp}; skipping"
  else
    log "Stage 0: prepare ${train_sets} (as train), ${dev_set}, ${test_sets} in $(pwd)/data"
    # links only: the corpus is never written to
    "${recipe}/local/link_splits.sh" "${librispeech}" data/local/corpus "${train_sets}" \
      "${dev_set}" "${test_sets}"
    ali=()
    if [ -n "${alignments}" ]; then ali=(--alignments "${alignments}"); fi
    speechvq prepare librispeech data/local/corpus data "${ali[@]}"
    echo "${stamp}" > data/.done
  fi
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: dump audio at 16 kHz"
  for split in train ${eval_sets}; do
    speechvq dump "data/${split}" "dump/${split}" --nj "${nj}"   # a complete dump is skipped
  done
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  # No --valid: the model's speaker embeddings cover the training readers only, and the dev and
  # test readers are others (LibriSpeech's splits share no reader); they are scored in stage 3.
  log "Stage 2: train ${exp} on ${ngpu} GPU(s)"
  # Resumes from ${exp}/checkpoints/last.pt; a finished run says so and returns at once.
  # shellcheck disable=SC2086
  "${launcher[@]}" train "${configs[@]}" --data dump/train --exp "${exp}" ${train_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: encode units of ${eval_sets}"
  aligned=""  # the splits with phone alignments (and train's), whose units are scored
  for split in ${eval_sets}; do
    encode_units "${split}" --device "${device}" "${jobs[@]}"
    if [ ! -f "data/${split}/phones.ctm" ] || [ ! -f data/train/phones.ctm ]; then
      log "data/${split} or data/train has no phone alignments (give --alignments, the MFA" \
          "TextGrids, at stage 0): unit scoring skipped; units are in ${exp}/units/${split}.txt"
    else
      aligned="${aligned} ${split}"
    fi
  done
  score_units "${aligned}" --device "${device}" "${jobs[@]}"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ "${n_convert}" -gt 0 ]; then
  first_test=${tests%% *}
  log "Stage 4: convert ${n_convert} ${first_test} utterances to ${n_targets} training speakers"
  targets=$(speechvq convert --model "${exp}" --list-speakers | sed -n "1,${n_targets}p" | paste -sd, -)
  # convert keeps the wavs already in --out; only missing conversions are made
  speechvq convert --model "${exp}" --data "dump/${first_test}" --speakers "${targets}" \
    --max-utts "${n_convert}" --per-speaker 1 --head "${head}" --device "${device}" \
    --out "${exp}/convert/${first_test}" "${jobs[@]}"
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
