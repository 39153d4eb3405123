#!/usr/bin/env bash
# local/link_splits.sh CORPUS OUT TRAIN_SETS DEV_SET TEST_SETS
#
# The LibriSpeech folders the recipe prepares, as links under OUT (never a copy, never a write
# into CORPUS): OUT/train holds a link to every SPK/CHAPTER of the TRAIN_SETS (e.g.
# "train-clean-100 train-clean-360"; LibriSpeech's splits share no reader or chapter), so
# `speechvq prepare librispeech OUT data` makes one data/train from them; OUT/<DEV_SET> and
# OUT/<TEST_SET> link to those splits as they are (data/dev_clean, data/test_clean, ...).
set -euo pipefail
corpus=$1; out=$2; train_sets=$3; dev_set=$4; test_sets=$5

rm -rf "${out}"
mkdir -p "${out}/train"
for split in ${train_sets}; do
  if [ ! -d "${corpus}/${split}" ]; then
    echo "$0: error: ${corpus}/${split} is missing; --train-sets lists LibriSpeech split" \
         "folders of --librispeech (e.g. train-clean-100)" >&2
    exit 2
  fi
  for spk in "${corpus}/${split}"/*/; do
    spk=$(basename "${spk}")
    mkdir -p "${out}/train/${spk}"
    for chapter in "${corpus}/${split}/${spk}"/*/; do
      ln -s "${chapter%/}" "${out}/train/${spk}/$(basename "${chapter}")"
    done
  done
done
for split in ${dev_set} ${test_sets}; do
  if [ ! -d "${corpus}/${split}" ]; then
    echo "$0: error: ${corpus}/${split} is missing; check --dev-set and --test-sets" >&2
    exit 2
  fi
  ln -s "${corpus}/${split}" "${out}/${split}"
done
