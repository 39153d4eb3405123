#!/usr/bin/env bash
# The image VQ-VAE on real MNIST digits (28x28 grey), on CPU.
#
#   bash egs/mnist/run.sh --mnist /data/mnist                       # stages 0-6
#   bash egs/mnist/run.sh --mnist ../shared/data/real/mnist          # only t10k: split 7000/1000
#   bash egs/mnist/run.sh --mnist DIR --splits "train=train test=t10k:0-4999"
#
# Stages: 0 prepare: the IDX files (train-images-idx3-ubyte, t10k-..., gzipped or not) -> one
# dump per split (MNIST is a pixel array already, so preparing it is writing the dump), 1 train,
# 2 evaluate the test split beside k-means on patches at the same bits per image, 3 encode both
# splits into code dumps, 4 train the class-conditional PixelCNN prior over the codes, 5 evaluate
# it and sample digits of every class, 6 report.
# Splits: train=train test=t10k when DIR has the training files, else the t10k set split by index
# (train=t10k:0-6999 test=t10k:7000-7999, both ends included). Each stage skips finished work.
set -euo pipefail

stage=0              # first stage to run
stop_stage=100       # last stage to run
mnist=               # folder of the MNIST IDX files; stage 0
splits=              # "NAME=SET[:START-END] ..." (default: see above)
workdir=             # where dump/ and exp/ go (default: this folder)
train_config=conf/train.yaml
train_args=          # extra key=value overrides for training
exp=exp/mnist        # experiment dir (relative to --workdir)
kmeans_patches=100000  # training patches the k-means baseline is fitted on
kmeans_iters=100     # its most Lloyd iterations
prior_config=conf/prior.yaml  # the prior over the codes (stages 3-5); "" = no prior
prior_args=          # extra key=value overrides for the prior, e.g. "train.max_steps=100"
prior_eval_args=     # extra options of `speechvq evaluate prior`, e.g. "--samples-per-class 5"
prior_samples=10     # images sampled of every class into ${exp}_prior/samples
prior_guidance=0     # guidance weight W of the scored and the stage-5 samples (0: none; README "Priors")
help_message="Usage: $0 --mnist DIR [options]; options are --name value, e.g. --stage 1"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

train_config=$(resolve_conf train-config "${train_config}")
if [ -n "${prior_config}" ]; then prior_config=$(resolve_conf prior-config "${prior_config}"); fi
if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  corpus_folder mnist "the folder of the MNIST IDX files"
  if [ -z "${splits}" ]; then
    if [ -e "${mnist}/train-images-idx3-ubyte" ] || [ -e "${mnist}/train-images-idx3-ubyte.gz" ]; then
      splits="train=train test=t10k"
    else
      splits="train=t10k:0-6999 test=t10k:7000-7999"
      log "No MNIST training files in ${mnist}: the t10k digits are split as ${splits}"
    fi
  fi
fi
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: prepare ${mnist} (${splits}) in $(pwd)/dump"
  split_args=()
  for s in ${splits}; do split_args+=(--split "${s}"); done
  speechvq prepare-images mnist "${mnist}" dump "${split_args[@]}"   # a complete dump is skipped
fi

. "${recipe}/../../tools/image_stages.sh"   # 1 train, 2 evaluate, 3-5 prior, 6 report
