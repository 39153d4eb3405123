#!/usr/bin/env bash
# The image VQ-VAE of van den Oord et al. (2017, section 4.2) on the built-in images, on CPU.
#
#   bash egs/images/run.sh                           # stages 0-6, about 13 min on 2 cores (README)
#   bash egs/images/run.sh --stage 2 --stop-stage 2  # evaluate again
#   bash egs/images/run.sh --train-config conf/long.yaml --exp exp/images_long   # an hour of CPU
#   bash egs/images/run.sh --workdir /scratch/images # dump/ exp/ there, not in egs/images
#
# Stages: 0 prepare: the built-in images (32x32 RGB digits over photos and noise, 20,000 train +
# 5,000 test, rendered offline and cached) -> dump/train, dump/test (the images are made as pixel
# arrays, so preparing them is writing the dump: there is no separate dump stage), 1 train,
# 2 evaluate the test split beside k-means on patches at the same bits per image, 3 encode both
# splits into code dumps, 4 train the class-conditional gated PixelCNN prior over the codes,
# 5 evaluate it (bits per code beside n-gram baselines, class-conditional samples scored by a
# classifier) and sample images of every class, 6 report.
# Each stage skips finished work. Paths given as options are relative to the directory you run
# from, except that a relative --train-config is looked up in this folder first.
set -euo pipefail

stage=0              # first stage to run
stop_stage=100       # last stage to run
size=default         # built-in images: default (20,000 + 5,000) or tiny (512 + 128, tests)
workdir=             # where dump/ and exp/ go (default: this folder)
train_config=conf/train.yaml
train_args=          # extra key=value overrides for training, e.g. "train.max_steps=100"
exp=exp/images       # experiment dir (relative to --workdir)
kmeans_patches=100000  # training patches the k-means baseline is fitted on
kmeans_iters=100     # its most Lloyd iterations
prior_config=conf/prior.yaml  # the prior over the codes (stages 3-5); "" = no prior
prior_args=          # extra key=value overrides for the prior, e.g. "train.max_steps=100"
prior_eval_args=     # extra options of `speechvq evaluate prior`, e.g. "--samples-per-class 5"
prior_samples=10     # images sampled of every class into ${exp}_prior/samples
prior_guidance=12    # guidance weight W of the scored and the stage-5 samples (0: none; README "Priors")
help_message="Usage: $0 [options]; options are --name value, e.g. --stage 1 --stop-stage 2"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

train_config=$(resolve_conf train-config "${train_config}")
if [ -n "${prior_config}" ]; then prior_config=$(resolve_conf prior-config "${prior_config}"); fi
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: prepare the built-in images (size=${size}) in $(pwd)/dump"
  speechvq prepare-images builtin dump --size "${size}"   # cached; a complete dump is skipped
fi

. "${recipe}/../../tools/image_stages.sh"   # 1 train, 2 evaluate, 3-5 prior, 6 report
