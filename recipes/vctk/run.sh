#!/usr/bin/env bash
# The paper's speech VQ-VAE on VCTK 0.92 (or 0.80): units and voice conversion.
#
#   bash recipes/vctk/run.sh --vctk /data/VCTK-Corpus-0.92                 # stages 0-5
#   bash recipes/vctk/run.sh --vctk /data/VCTK-Corpus-0.92 --stage 2 --stop-stage 2 --ngpu 4
#   bash recipes/vctk/run.sh --stage 4 --n-convert 16                     # more conversions
#   bash recipes/vctk/run.sh --corpus-dir data_real/all --ngpu 0 --stage 1   # a prepared Kaldi dir
#
# Stages: 0 prepare VCTK into data/ (all, train, dev, test, test_unseen), 1 dump, 2 train
# (conf/train.yaml: the paper's settings, about one GPU-day), 3 encode units (and score them
# when the data has phone alignments; VCTK has none), 4 convert held-out speakers' (test_unseen)
# and training speakers' (test) parallel sentences to training speakers who read the same
# sentences, and score the conversions, 5 report. Each stage skips finished work. With
# --corpus-dir (a prepared Kaldi data dir, e.g. from `speechvq prepare folder` for recordings
# not in the VCTK layout) stage 0 is skipped, stage 1 dumps that dir as train, stage 3 encodes
# it and stage 4 is skipped (no parallel sentences to convert and score).
# Paths given as options are relative to the directory you run from, except that a relative
# --train-config is looked up in this recipe's folder first (e.g. conf/train_debug.yaml).
set -euo pipefail

stage=0            # first stage to run
stop_stage=100     # last stage to run
vctk=              # the unpacked corpus (holds wav48_silence_trimmed/ or wav48/, and txt/); stage 0
corpus_dir=        # a prepared Kaldi data dir (e.g. from `speechvq prepare folder`) instead of --vctk
mic=mic1           # VCTK 0.92 microphone: mic1 or mic2
nj=4               # parallel jobs: dump, encode, evaluate units (encoding), convert
cmd=               # run each encode/convert job as `${cmd} speechvq ...`, e.g. "srun --ntasks=1"; default: local
ngpu=1             # GPUs for training (> 1: torchrun); 0 = CPU everywhere
workdir=           # where data/ dump/ exp/ go (default: this recipe's folder)
train_config=conf/train.yaml  # the paper's settings (conf/train_debug.yaml: a short check run)
train_args=        # extra key=value overrides for training, e.g. "train.max_steps=100000"
exp=exp/vctk       # experiment dir (relative to --workdir)
head=auto          # conversion decoder: auto (WaveNet on a GPU), wavenet, mel (needs a mel head)
n_targets=2        # target speakers: the first N training speakers who read the test sentences
n_convert=8        # source utterances converted per source split ...
per_speaker=1      # ... at most this many from each source speaker
abx_triplets=5000  # ABX triplets per condition, when the data has alignments
help_message="Usage: $0 --vctk DIR [options]; options are --name value, e.g. --stage 2 --ngpu 4"

. "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"

# Resolve user paths against the directory the recipe was started from, then work in --workdir.
train_config=$(resolve_conf train-config "${train_config}")
if [ -n "${corpus_dir}" ]; then
  if [ ! -d "${corpus_dir}" ]; then
    echo "$0: error: --corpus-dir ${corpus_dir} is not a folder; pass a prepared Kaldi data dir" \
         "(for a folder <speaker>/<utt>.wav: speechvq prepare folder SRC OUT, then OUT/all)" >&2
    exit 2
  fi
  corpus_dir=$(cd "${corpus_dir}" && pwd)
elif [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  corpus_folder vctk "the unpacked VCTK corpus (e.g. /data/VCTK-Corpus-0.92), or --corpus-dir" \
    "DIR, a prepared Kaldi data dir"
fi
check_ngpu   # sets ${device} and ${launcher[@]}; --ngpu 0 adds train.device=cpu to ${train_args}
workdir=${workdir:-${recipe}}
mkdir -p "${workdir}"
cd "${workdir}"

# The source splits present (a tree with fewer than 4 speakers holds none out: no test_unseen).
eval_sets=""

if [ -n "${corpus_dir}" ]; then
  log "Training on ${corpus_dir}: stage 0 skipped, stage 3 encodes the training data, stage 4" \
      "is skipped (conversion scoring needs VCTK's parallel sentences)"
elif [ ${stage} -le 0 ] && [ ${stop_stage} -ge 0 ]; then
  stamp="vctk=${vctk} mic=${mic}"
  if [ -f data/.done ] && [ "$(cat data/.done)" = "${stamp}" ]; then
    log "Stage 0: data/ was prepared from ${stamp}; skipping"
  else
    log "Stage 0: prepare ${vctk} (${mic}) in $(pwd)/data"
    if ! speechvq prepare vctk "${vctk}" data --mic "${mic}"; then
      echo "$0: error: stage 0 could not prepare ${vctk} as VCTK (above). Recordings in another" \
           "layout: run \`speechvq prepare folder ${vctk} data_folder\` (a folder" \
           "<speaker>/<utt>.wav, optional .txt beside) and pass --corpus-dir data_folder/all" >&2
      exit 2
    fi
    echo "${stamp}" > data/.done
  fi
fi
for split in test_unseen test; do
  if [ -z "${corpus_dir}" ] && { [ -d "data/${split}" ] || [ -d "dump/${split}" ]; }; then
    eval_sets="${eval_sets} ${split}"
  fi
done

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  log "Stage 1: dump audio at 16 kHz"
  if [ -n "${corpus_dir}" ]; then
    speechvq dump "${corpus_dir}" dump/train --nj "${nj}"
  else
    for split in train dev ${eval_sets}; do
      speechvq dump "data/${split}" "dump/${split}" --nj "${nj}"   # a complete dump is skipped
    done
  fi
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  log "Stage 2: train ${exp} on ${ngpu} GPU(s)"
  # Resumes from ${exp}/checkpoints/last.pt; a finished run says so and returns at once.
  # shellcheck disable=SC2086
  "${launcher[@]}" train --config "${train_config}" --data dump/train --exp "${exp}" ${train_args}
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  log "Stage 3: encode units"
  aligned=""  # the splits with phone alignments, whose units are scored
  if [ -n "${corpus_dir}" ]; then
    encode_units train --device "${device}" "${jobs[@]}"
  fi
  for split in ${eval_sets}; do
    encode_units "${split}" --device "${device}" "${jobs[@]}"
    if [ ! -f "data/${split}/phones.ctm" ] && [ ! -f "dump/${split}/phones.npy" ]; then
      log "data/${split} has no phone alignments (VCTK ships none): unit scoring skipped;" \
          "units are in ${exp}/units/${split}.txt (the report gives their label-free statistics)"
    else
      aligned="${aligned} ${split}"
    fi
  done
  score_units "${aligned}" --device "${device}" "${jobs[@]}"
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ] && [ -z "${corpus_dir}" ]; then
  log "Stage 4: convert parallel sentences to training speakers who also read them"
  # Every VCTK speaker reads the parallel sentences 001-024, so each training speaker in test is
  # a target with a real reading of the converted sentence (for MCD).
  targets=$(speechvq convert --model "${exp}" --list-speakers --data dump/test)
  targets=$(echo "${targets}" | sed -n "1,${n_targets}p" | paste -sd, -)
  if [ "${head}" != mel ]; then
    log "The WaveNet generates one sample per step: fast on a GPU, minutes per second of audio on CPU"
  fi
  conv_dirs=(); conv_names=""  # conversion dirs whose scores are missing or stale
  for split in ${eval_sets}; do
    out=${exp}/convert/${split}
    # convert keeps the wavs already in ${out}; only missing conversions are made.
    speechvq convert --model "${exp}" --data "dump/${split}" --speakers "${targets}" \
      --max-utts "${n_convert}" --per-speaker "${per_speaker}" --head "${head}" \
      --out "${out}" --device "${device}" "${jobs[@]}"
    result=${exp}/eval/conversion_${split}.json
    # (the wav/ folder changes only when convert adds conversions)
    if newer_than_model "${result}" && [ "${result}" -nt "${out}/wav" ]; then
      log "${result} is newer than the model and the conversions: kept"
    else
      conv_dirs+=("${out}")
      conv_names="${conv_names:+${conv_names},}${split}"
    fi
  done
  if [ ${#conv_dirs[@]} -gt 0 ]; then
    # one call for all splits: the speaker classifier and the training codes are fitted once
    speechvq evaluate conversion --model "${exp}" --data "${conv_dirs[@]}" --ref dump/test \
      --train dump/train --name "${conv_names}" --device "${device}"
  fi
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  log "Stage 5: report"
  speechvq report --exp "${exp}"
  log "Report: $(pwd)/${exp}/report/report.md"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
