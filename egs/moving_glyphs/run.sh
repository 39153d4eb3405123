#!/usr/bin/env bash
# Video on the shared core (van den Oord et al. 2017, section 4.4): a 3-D VQ-VAE on the built-in
# moving glyphs (Moving-MNIST style: two blurred digits bouncing in 20 grey 64x64 frames), a
# prior over its 10x16x16 latent clips, and continuations of test clips from their first 10
# frames made purely in latent space, on CPU.
#
#   bash egs/moving_glyphs/run.sh                           # every stage, CPU
#   bash egs/moving_glyphs/run.sh --stage 5 --stop-stage 7  # evaluate, sample and report again
#   bash egs/moving_glyphs/run.sh --workdir /scratch/mg     # dump/ codes/ exp/ there
#
# Stages: 0 prepare: the built-in clips (1,000 train + 128 test, rendered offline and cached)
# -> dump/train, dump/test (the clips are made as arrays, so preparing them is writing the dump:
# there is no separate dump stage); 1 train the VQ-VAE; 2 evaluate its reconstructions;
# 3 encode both splits into code dumps (codes/); 4 train the prior on codes/train; 5 evaluate:
# the prior's bits per code beside uniform, unigram and bigram, and greedy continuations from
# 10 frames beside repeating the last frame and a blank frame; 6 sample continuations (greedy
# and at temperature 1) of test clips; 7 report. Each stage skips finished work.
set -euo pipefail

stage=0              # first stage to run
stop_stage=100       # last stage to run
size=default         # built-in clips: default (1,000 + 128) or tiny (32 + 8, tests)
workdir=             # where dump/ codes/ and exp/ go (default: this folder)
train_config=conf/train.yaml
train_args=          # extra key=value overrides for the VQ-VAE, e.g. "train.max_steps=100"
prior_config=conf/prior.yaml
prior_args=          # extra key=value overrides for the prior
exp=exp/video        # the VQ-VAE's experiment dir (relative to --workdir)
prior_exp=exp/video_prior
prompt_frames=10     # given frames of each continued clip (a multiple of the time stride)
max_clips=64         # test clips continued in stage 5
samples=4            # clips continued by `speechvq sample` in stage 6, per temperature
prompt_length=1280   # codes kept by `speechvq sample`: the first 10 frames' 5 latent frames of
                     # 16 x 16 codes (conf/train.yaml: time stride 2, space stride 4)
help_message="Usage: $0 [options]; options are --name value, e.g. --stage 1 --stop-stage 2"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

train_config=$(resolve_conf train-config "${train_config}")
prior_config=$(resolve_conf prior-config "${prior_config}")
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: prepare the built-in moving glyphs (size=${size}) in $(pwd)/dump"
  speechvq prepare-video builtin dump --size "${size}"   # cached; a complete dump is skipped
fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: train the video VQ-VAE ${exp}"
  # shellcheck disable=SC2086
  speechvq train --config "${train_config}" --data dump/train --exp "${exp}" --no-progress \
    ${train_args}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  if newer_than_model "${exp}/eval/video_test.json"; then
    log "Stage 2: ${exp}/eval/video_test.json is newer than the model: kept"
  else
    log "Stage 2: reconstruction PSNR of ${exp} on dump/test"
    speechvq evaluate video --model "${exp}" --data dump/test --no-progress
  fi
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: code dumps of dump/train and dump/test"
  for split in train test; do
    encode_codes "${split}" "codes/${split}" --batch-size 16 --no-progress
  done
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  log "Stage 4: train the video prior ${prior_exp} on codes/train"
  # shellcheck disable=SC2086
  speechvq train --config "${prior_config}" --data codes/train --exp "${prior_exp}" \
    --no-progress ${prior_args}
fi

prior_newer() { [ -e "$1" ] && [ "$1" -nt "${prior_exp}/checkpoints/last.pt" ]; }

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  if prior_newer "${exp}/eval/prior_test.json"; then
    log "Stage 5: ${exp}/eval/prior_test.json is newer than the prior: kept"
  else
    log "Stage 5: bits per code of ${prior_exp} on codes/test beside uniform, unigram, bigram"
    speechvq evaluate prior --model "${prior_exp}" --data codes/test --fit-on codes/train \
      --exp "${exp}" --no-progress
  fi
  if prior_newer "${exp}/eval/video_test.json"; then
    log "Stage 5: ${exp}/eval/video_test.json is newer than the prior: kept"
  else
    log "Stage 5: greedy continuations of ${max_clips} test clips from ${prompt_frames} frames"
    speechvq evaluate video --model "${exp}" --prior "${prior_exp}" --data dump/test \
      --prompt-frames "${prompt_frames}" --max-clips "${max_clips}" --batch-size 16 \
      --no-progress
  fi
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  for temperature in 0 1; do
    out=${prior_exp}/samples/continue_t${temperature}
    if prior_newer "${out}/codes/codes.json"; then
      log "Stage 6: ${out} is newer than the prior: kept"
    else
      log "Stage 6: continue ${samples} test clips at temperature ${temperature} -> ${out}"
      speechvq sample --model "${prior_exp}" -n "${samples}" --prompt codes/test \
        --prompt-length "${prompt_length}" --temperature "${temperature}" -o "${out}"
    fi
  done
fi

if [ ${stage} -le 7 ] && [ ${stop_stage} -ge 7 ]; then
  log "Stage 7: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
