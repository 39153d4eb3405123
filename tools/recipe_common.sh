#!/usr/bin/env bash
# What every speechvq recipe does first: source it after setting the option defaults.
#
#   stage=0; stop_stage=100; train_config=conf/train.yaml
#   help_message="Usage: $0 [options]"
#   . "$(dirname "${BASH_SOURCE[0]}")/../../tools/recipe_common.sh"
#
# It parses --name value options (tools/parse_options.sh), refuses stray positional arguments,
# sets ${recipe} to the recipe's own folder (absolute), and defines:
#   log MESSAGE...          a timestamped line naming the script and line, as ESPnet's recipes
#   resolve_conf NAME PATH  PATH made absolute; a relative conf/... is looked up in ${recipe}
#                           first, so a recipe works from any current directory (exit 2 if absent)
#   corpus_folder NAME WHAT...
#                           the folder given as --NAME (the variable ${NAME}) made absolute, for
#                           stage 0; exit 2 saying stage 0 needs --NAME DIR, WHAT, when it is
#                           no folder
#   newer_than_model FILE   FILE exists and is newer than ${exp}/checkpoints/last.pt (a stage's
#                           output that is still valid for the current model is kept)
#   ddp_launcher VAR N      sets the array VAR to what runs `speechvq train` in N processes:
#                           (speechvq) for N = 1, else torchrun over N PyTorch DDP processes
#   check_ngpu              --ngpu must be a number; sets ${device} (auto, or cpu for --ngpu 0,
#                           which also adds train.device=cpu to ${train_args}) and ${launcher[@]},
#                           what runs `train`: `ddp_launcher launcher ${ngpu}`, one per GPU
#   encode_units SPLIT [OPTION...]
#                           ${exp}/units/SPLIT.txt from dump/SPLIT with `speechvq encode`
#                           (OPTIONs added), unless it is newer than the model
#   score_units "SPLIT..." [OPTION...]
#                           one `speechvq evaluate units` (${abx_triplets} ABX triplets,
#                           OPTIONs added) of the SPLITs whose ${exp}/eval/units_SPLIT.json is
#                           missing or older than the model; nothing when none is
#   encode_codes SPLIT OUT [OPTION...]
#                           the code dump OUT of dump/SPLIT (`speechvq encode --codes-out`, what
#                           a prior trains on; OPTIONs added), unless it is newer than the model
#   ${jobs[@]}              `--nj ${nj}` and, when --cmd is set, `--cmd "${cmd}"`: what the
#                           recipes pass to encode, evaluate units and convert (each splits its
#                           data into ${nj} jobs run as `${cmd} speechvq ...`, ESPnet's cmd.sh)

. "$(dirname "${BASH_SOURCE[0]}")/parse_options.sh"
if [ $# -gt 0 ]; then
  echo "$0: error: unexpected argument '$1'; options are --name value (run $0 --help)" >&2
  exit 2
fi

recipe=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)

# Every stage calls the speechvq CLI: say how to get it rather than "command not found" later,
# and run it once, since a console script can be on PATH and still fail to start (an editable
# install whose checkout was moved or deleted: ModuleNotFoundError at the first stage).
if ! command -v speechvq > /dev/null 2>&1; then
  echo "$0: error: the speechvq command is not on PATH; install it from the repository root with" \
       "pip install -e \".[dev]\" (README, Set-up), or activate the environment that has it" >&2
  exit 2
fi
if ! speechvq_error=$(speechvq --version 2>&1 > /dev/null); then
  echo "$0: error: the speechvq command on PATH ($(command -v speechvq)) does not run" \
       "(${speechvq_error##*$'\n'}); reinstall it from the repository root" \
       "($(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)) with pip install -e \".[dev]\"" >&2
  exit 2
fi

# --nj N --cmd PREFIX, for the commands that run parallel jobs (recipes set nj= and cmd=)
jobs=()
if [ -n "${nj+set}" ]; then
  if ! [[ "${nj}" =~ ^[1-9][0-9]*$ ]]; then
    echo "$0: error: --nj takes a number of parallel jobs (1 or more), got '${nj}'" >&2
    exit 2
  fi
  jobs=(--nj "${nj}")
  if [ -n "${cmd:-}" ]; then jobs+=(--cmd "${cmd}"); fi
fi

log() { echo "$(date '+%F %T') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"; }

resolve_conf() {
  if [[ "$2" != /* ]] && [ -f "${recipe}/$2" ]; then
    echo "${recipe}/$2"
  elif [ -f "$2" ]; then
    echo "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
  else
    echo "$0: error: --$1 $2 not found (here or in ${recipe})" >&2
    return 2
  fi
}

check_ngpu() {
  if ! [[ "${ngpu}" =~ ^[0-9]+$ ]]; then
    echo "$0: error: --ngpu takes a number of GPUs (0 = CPU), got '${ngpu}'" >&2
    exit 2
  fi
  device=auto
  if [ "${ngpu}" -eq 0 ]; then
    device=cpu
    train_args="train.device=cpu ${train_args}"
  fi
  ddp_launcher launcher "${ngpu}"  # one process per GPU
}

ddp_launcher() {
  local -n _launcher=$1
  if [ "$2" -gt 1 ]; then
    # -m: `command -v speechvq` may be a shell shim (pyenv), which torchrun cannot run as Python
    _launcher=(torchrun --standalone --nproc_per_node "$2" -m speechvq)
  else
    _launcher=(speechvq)
  fi
}

corpus_folder() {
  local folder=${!1}
  if [ -z "${folder}" ] || [ ! -d "${folder}" ]; then
    echo "$0: error: stage 0 needs --${1//_/-} DIR, ${*:2}; got '${folder}'. Or start later with" \
         "--stage 1" >&2
    exit 2
  fi
  printf -v "$1" '%s' "$(cd "${folder}" && pwd)"
}

newer_than_model() { [ -e "$1" ] && [ "$1" -nt "${exp}/checkpoints/last.pt" ]; }

encode_units() {
  local split=$1
  shift
  if newer_than_model "${exp}/units/${split}.txt"; then
    log "${exp}/units/${split}.txt is newer than the model: kept"
  else
    speechvq encode --model "${exp}" --data "dump/${split}" --out "${exp}/units/${split}.txt" "$@"
  fi
}

score_units() {
  local splits=$1 split to_score=""
  shift
  for split in ${splits}; do
    if newer_than_model "${exp}/eval/units_${split}.json"; then
      log "${exp}/eval/units_${split}.json is newer than the model: kept"
    else
      to_score="${to_score} dump/${split}"
    fi
  done
  if [ -n "${to_score}" ]; then
    # one call: the code-to-phone map and the k-means baseline are fitted on train once;
    # results go to ${exp}/eval/units_<split>.json
    # shellcheck disable=SC2086
    speechvq evaluate units --model "${exp}" --data ${to_score} --fit-on dump/train \
      --abx-triplets "${abx_triplets}" "$@"
  fi
}

encode_codes() {
  local split=$1 out=$2
  shift 2
  if newer_than_model "${out}/codes.json"; then
    log "${out} is newer than the model: kept"
  else
    log "encode dump/${split} -> ${out} with ${exp}"
    speechvq encode --model "${exp}" --data "dump/${split}" --codes-out "${out}" "$@"
  fi
}
