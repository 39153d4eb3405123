#!/usr/bin/env bash
# Stages 1-3 of every image example (egs/*/run.sh), sourced after its own stage 0 has written
# dump/train and dump/test (and after tools/recipe_common.sh):
#   1 train ${exp} with ${train_config} (+ ${train_args}) through "${launcher[@]}" (default:
#     speechvq; torchrun for several GPUs); a finished run says so and returns at once
#   2 evaluate dump/test beside k-means on patches fitted on dump/train (${kmeans_patches},
#     ${kmeans_iters}, + ${eval_args}); kept when newer than the model
#   3 report
# It reads ${stage} ${stop_stage} ${exp} ${train_config} ${train_args} ${kmeans_patches}
# ${kmeans_iters}, and ${launcher[@]} and ${eval_args} when set.

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

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
