#!/usr/bin/env bash
# Stages 1-6 of every image example (egs/*/run.sh), sourced after its own stage 0 has written
# dump/train and dump/test (and after tools/recipe_common.sh):
#   1 train ${exp} with ${train_config} (+ ${train_args}) through "${launcher[@]}" (default:
#     speechvq; torchrun for several GPUs); a finished run says so and returns at once
#   2 evaluate dump/test beside k-means on patches fitted on dump/train (${kmeans_patches},
#     ${kmeans_iters}, + ${eval_args}); kept when newer than the model
#   3-5 only with ${prior_config} set: 3 encode dump/{train,test} -> dump/codes/{train,test}
#     (code dumps; kept when newer than the model), 4 train the prior ${prior_exp} (default
#     ${exp}_prior) on them with ${prior_config} (+ ${prior_args}), 5 evaluate it on the test
#     codes into ${exp}/eval (so this example's report shows it; + ${prior_eval_args}) and
#     sample ${prior_samples} images of every class into ${prior_exp}/samples, both at guidance
#     ${prior_guidance} (default 0: none)
#   6 report
# It reads ${stage} ${stop_stage} ${exp} ${train_config} ${train_args} ${kmeans_patches}
# ${kmeans_iters}, and ${launcher[@]} ${eval_args} ${prior_config} ${prior_args} ${prior_exp}
# ${prior_eval_args} ${prior_samples} ${prior_guidance} when set.

if [ -z "${launcher+x}" ]; then launcher=(speechvq); fi

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: train ${exp}"
  # shellcheck disable=SC2086
  "${launcher[@]}" train --config "${train_config}" --data dump/train --exp "${exp}" ${train_args}
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  if newer_than_model "${exp}/eval/images_test.json"; then
    log "Stage 2: ${exp}/eval/images_test.json is newer than the model: kept"
  else
    log "Stage 2: evaluate ${exp} on dump/test beside patch k-means fitted on dump/train"
    # shellcheck disable=SC2086
    speechvq evaluate images --model "${exp}" --data dump/test --fit-on dump/train \
      --kmeans-patches "${kmeans_patches}" --kmeans-iters "${kmeans_iters}" --no-progress \
      ${eval_args:-}
  fi
fi

prior_config=${prior_config:-}
prior_exp=${prior_exp:-${exp}_prior}
prior_samples=${prior_samples:-10}
prior_guidance=${prior_guidance:-0}

if [ -n "${prior_config}" ] && [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: code dumps of dump/train and dump/test"
  for split in train test; do
    encode_codes "${split}" "dump/codes/${split}" --batch-size 256 --no-progress
  done
fi

if [ -n "${prior_config}" ] && [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  log "Stage 4: train the prior ${prior_exp} on dump/codes/train"
  # shellcheck disable=SC2086
  speechvq train --config "${prior_config}" --data dump/codes/train --exp "${prior_exp}" \
    --no-progress ${prior_args:-}
fi

if [ -n "${prior_config}" ] && [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: evaluate the prior ${prior_exp} (best.pt) on dump/codes/test into ${exp}/eval"
  # shellcheck disable=SC2086
  speechvq evaluate prior --model "${prior_exp}" --checkpoint best --data dump/codes/test \
    --exp "${exp}" --guidance "${prior_guidance}" --no-progress ${prior_eval_args:-}
  speechvq sample --model "${prior_exp}" --checkpoint best --per-class "${prior_samples}" \
    --guidance "${prior_guidance}" -o "${prior_exp}/samples"
  log "Stage 5: samples in ${prior_exp}/samples/ (grid.png: a row per class)"
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  log "Stage 6: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
