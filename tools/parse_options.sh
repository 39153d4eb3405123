#!/usr/bin/env bash
# Kaldi-style option parsing for speechvq recipes: source it after setting defaults.
#
#   stage=0; stop_stage=100; nj=2          # defaults, each a shell variable
#   . tools/parse_options.sh               # then `--stop-stage 3` or `--stop-stage=3` sets stop_stage
#
# An option --foo-bar is accepted only when a variable foo_bar is already set, so a typo is an
# error (exit 2) instead of being ignored. `--help` prints "${help_message}" (if the recipe set one)
# and the options with their current values. Positional arguments are left in "$@".

_spvq_show_help() {
  [ -n "${help_message:-}" ] && printf '%s\n\n' "${help_message}"
  echo "Options (current values), with what each means:"
  local _v _doc
  for _v in ${_spvq_option_names}; do
    # the meaning is the comment on the line that sets the default in the recipe itself
    _doc=$(sed -n "s/^${_v}=[^#]*# *//p" "$0" | head -n 1)
    printf '  --%-16s %-22s %s\n' "${_v//_/-}" "${!_v}" "${_doc}"
  done
}

# Every variable set before this file is sourced may be an option; remember their names for --help.
_spvq_option_names=$(set | sed -n 's/^\([a-z][a-z0-9_]*\)=.*/\1/p' | grep -vx 'help_message' | tr '\n' ' ')

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      _spvq_show_help; exit 0 ;;
    --*=*)
      _name="${1%%=*}"; _value="${1#*=}"; shift ;;
    --*)
      _name="$1"
      if [ $# -lt 2 ]; then echo "$0: error: option ${_name} needs a value" >&2; exit 2; fi
      _value="$2"; shift 2 ;;
    *)
      break ;;
  esac
  _var="${_name#--}"; _var="${_var//-/_}"
  if ! [[ "${_var}" =~ ^[a-z][a-z0-9_]*$ ]] || [ -z "${!_var+set}" ]; then
    echo "$0: error: unknown option ${_name}; run $0 --help for the options" >&2
    exit 2
  fi
  printf -v "${_var}" '%s' "${_value}"
done
unset _name _value _var
true
