"""Errors a user can cause, as one exception family.

Every error a user can cause (a missing file, a wrong layout, corrupt audio, an unknown speaker, a
bad config key, a NaN loss) is raised as a `SpeechVQError` subclass whose message names the thing
and says how to fix it. The CLI prints it as one line, ``speechvq <cmd>: error: <message>``, and
exits with status 2. Any other exception is a bug in speechvq and keeps its traceback.
"""

from __future__ import annotations


class SpeechVQError(Exception):
    """Base class of all errors a user can cause; the message must name the thing and the fix."""

    exit_code = 2


class ConfigError(SpeechVQError):
    """A config file or a ``key=value`` override is invalid (unknown key, wrong type, bad value)."""


class DataError(SpeechVQError):
    """A data directory, dump or corpus tree is missing, malformed or inconsistent."""


class AudioError(SpeechVQError):
    """An audio file is missing, unreadable, corrupt, empty or silent."""


class ModelError(SpeechVQError):
    """A model or checkpoint is missing, incompatible, or asked for something it cannot do
    (an unknown speaker, a head it was not trained with)."""


class TrainingError(SpeechVQError):
    """Training cannot go on (a NaN or infinite loss, an exp dir made with another config)."""


class OutputError(SpeechVQError):
    """An output path breaks the output rules (`speechvq.ownership`): it is one of the command's
    inputs, it holds files the command did not make, or a link inside it leads out of it.
    Nothing was changed."""


class LockedError(OutputError):
    """Another run is writing the same output now (`speechvq.locks`); it names the holder."""


class DiskFullError(SpeechVQError):
    """A write ran out of disk space (ENOSPC or a quota); the partial file was removed and the
    previous complete output is intact."""
