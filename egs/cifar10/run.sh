#!/usr/bin/env bash
# The paper's CIFAR-10 VQ-VAE (van den Oord et al. 2017, section 4.2), meant for a GPU.
#
#   bash egs/cifar10/run.sh --cifar /data/cifar-10-batches-bin      # stages 0-3
#   bash egs/cifar10/run.sh --cifar DIR --train-config conf/categorical.yaml --exp exp/cifar10_cat
#   bash egs/cifar10/run.sh --stage 1 --stop-stage 1 --ngpu 4
#
# Stages: 0 prepare: the binary version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin;
# never the python pickles) -> dump/train (50,000), dump/test (10,000) (the records are pixel
# arrays already, so preparing them is writing the dump), 1 train (conf/train.yaml: the paper's
# 256 hidden units, K=512, D=64, Adam 2e-4, batch 128, 250k steps), 2 evaluate the test split
# beside k-means on 4x4x3 patches at the same bits per image, 6 report. Each stage skips
# finished work.
set -euo pipefail

stage=0              # first stage to run
stop_stage=100       # last stage to run
cifar=               # the unpacked cifar-10-binary.tar.gz (or its cifar-10-batches-bin/); stage 0
ngpu=1               # GPUs for training (> 1: torchrun); 0 = CPU everywhere
workdir=             # where dump/ and exp/ go (default: this folder)
train_config=conf/train.yaml
train_args=          # extra key=value overrides for training
exp=exp/cifar10      # experiment dir (relative to --workdir)
kmeans_patches=100000  # training patches the k-means baseline is fitted on
kmeans_iters=100     # its most Lloyd iterations
help_message="Usage: $0 --cifar DIR [options]; options are --name value, e.g. --ngpu 4"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

train_config=$(resolve_conf train-config "${train_config}")
if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  corpus_folder cifar "the unpacked CIFAR-10 binary version"
fi
check_ngpu   # sets ${device} and ${launcher[@]}; --ngpu 0 adds train.device=cpu to ${train_args}
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

if [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  log "Stage 0: prepare ${cifar} in $(pwd)/dump"
  speechvq prepare-images cifar10 "${cifar}" dump   # a complete dump is skipped
fi

eval_args="--device ${device} --batch-size 256"
. "${recipe}/../../tools/image_stages.sh"   # 1 train, 2 evaluate, 6 report (no prior here)
