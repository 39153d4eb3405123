"""eSpeak NG synthesis with exact phone alignments, for the built-in corpus.

eSpeak NG (formant synthesis; https://github.com/espeak-ng/espeak-ng, GPL-3.0) is loaded from the
``espeakng-loader`` wheel through ctypes only: speechvq does not link against it, and the audio it
makes is not GPL. With ``espeakINITIALIZE_PHONEME_EVENTS`` each phoneme event's ``sample`` field
is the phone's onset in samples from the start of the utterance, so alignments are exact with
respect to the synthesiser's own segmentation (facts measured in notes/builtin_corpus.md).

Determinism: eSpeak seeds its noise generator with ``time(NULL)`` and its wave generator keeps
static state across utterances, so `synthesize_speaker` (i) reseeds both eSpeak's PRNG and libc's
``rand`` before every utterance and (ii) must run in a fresh process per speaker, with utterances
in a fixed order (builtin.py uses a ``spawn`` pool with ``maxtasksperchild=1``).

This module imports no torch: it runs in each fresh worker process, where importing torch would
cost more than synthesising a speaker. The eSpeak phone names are mapped onto 39 ARPAbet phones
plus ``SIL`` (`PHONE_MAP`), and `TIMIT_FOLD39` says how that set folds onto TIMIT's 39 classes
(Lee and Hon 1989).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import zlib
from ctypes import POINTER, c_char, c_char_p, c_int, c_long, c_short, c_uint, c_void_p
from pathlib import Path

import numpy as np

from speechvq.audio import resample, save_audio

__all__ = ["PHONES", "PHONE_MAP", "TIMIT_FOLD39", "SAMPLE_RATE", "PAD_S", "Espeak", "map_phone",
           "phone_segments", "synthesize_speaker", "utterance_seed"]

SAMPLE_RATE = 16000  # output rate (Hz)
PAD_S = 0.15  # silence added at both ends, labelled SIL (s)

# The corpus phone set: SIL first, then 39 ARPAbet phones (15 vowels, 24 consonants).
PHONES: tuple[str, ...] = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH",
    "UW", "B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S",
    "SH", "T", "TH", "V", "W", "Y", "Z", "ZH",
)
# How the set folds onto TIMIT's 39 classes (Lee and Hon 1989, as speechvq.data.speech.kaldi folds TIMIT):
# AO merges into AA and ZH into SH; every other phone is its own class; TIMIT's DX (flap) never
# occurs here (eSpeak's flap t# is labelled T).
TIMIT_FOLD39: dict[str, str] = {p: p for p in PHONES} | {"AO": "AA", "ZH": "SH"}

# eSpeak mnemonic (stress marks stripped) -> ARPAbet; ";" (linking) is merged into the phone
# before it. Covers en-us and en-us-nyc and the British/Caribbean accents (notes, "Phone set").
PHONE_MAP: dict[str, str] = {
    **{c: c.upper() for c in "p b t d k g f v s z m n l r w".split()},
    "t#": "T", "t2": "T", "t[": "T", "n-": "N", "@L": "L", "r-": "R", "w#": "W",
    "T": "TH", "D": "DH", "S": "SH", "Z": "ZH", "h": "HH", "tS": "CH", "dZ": "JH", "N": "NG",
    "j": "Y", "I": "IH", "I#": "IH", "I2": "IH", "i@": "IH", "i@3": "IH", "IR": "IH",
    "i": "IY", "i:": "IY",
    "E": "EH", "e@": "EH", "a": "AE", "aa": "AE", "a#": "AH", "@": "AH", "@2": "AH", "@5": "AH",
    "V": "AH", "VR": "AH", "3": "ER", "3:": "ER", "0": "AA", "A:": "AA", "A@": "AA", "O:": "AO",
    "O2": "AO", "O@": "AO", "o@": "AO", "oU": "OW", "aI": "AY", "aI2": "AY", "aI3": "AY",
    "aI@": "AY", "aU": "AW", "eI": "EY", "OI": "OY", "U": "UH", "U@": "UH", "u:": "UW",
    "_:": "SIL", "_": "SIL", "_|": "SIL", "?": "SIL",
}
_LINK = ";"
_EVENT_PHONEME, _EVENT_LIST_TERMINATED = 7, 0


def map_phone(mnemonic: str) -> str:
    """ARPAbet (or SIL) for one eSpeak phoneme mnemonic, or ``";"`` for the linking phone.

    Stress marks are stripped; unknown names are retried without digits and ``#-[/``.
    Raises RuntimeError for a name the table cannot map (a bug: the voices used are all covered).
    """
    m = mnemonic.strip("',")
    if m == _LINK:
        return _LINK
    if m in PHONE_MAP:
        return PHONE_MAP[m]
    bare = re.sub(r"[0-9#\-\[/]", "", m)
    if bare in PHONE_MAP:
        return PHONE_MAP[bare]
    raise RuntimeError(f"eSpeak phone {mnemonic!r} has no ARPAbet mapping; add it to PHONE_MAP")


class _ID(ctypes.Union):
    _fields_ = [("number", c_int), ("name", c_char_p), ("string", c_char * 8)]


class _EVENT(ctypes.Structure):  # espeak_EVENT of speak_lib.h (sizeof 40 on x86-64)
    _fields_ = [("type", c_int), ("unique_identifier", c_uint), ("text_position", c_int),
                ("length", c_int), ("audio_position", c_int), ("sample", c_int),
                ("user_data", c_void_p), ("id", _ID)]


_CALLBACK = ctypes.CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_EVENT))


def _libc():
    """The C library whose ``rand`` eSpeak uses (None if it cannot be loaded)."""
    for name in (None, ctypes.util.find_library("c"), "msvcrt"):
        try:
            return ctypes.CDLL(name)
        except (OSError, TypeError):
            continue
    return None


class Espeak:
    """One initialised eSpeak NG in synchronous mode with phoneme events (one per process)."""

    def __init__(self) -> None:
        import espeakng_loader  # the `builtin` extra; builtin.py checks it is installed

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.libc = _libc()
        lib = self.lib
        lib.espeak_Initialize.argtypes = [c_int, c_int, c_char_p, c_int]
        lib.espeak_SetVoiceByName.argtypes = [c_char_p]
        lib.espeak_SetParameter.argtypes = [c_int, c_int, c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [c_long]
        lib.espeak_Synth.argtypes = [c_void_p, ctypes.c_size_t, c_uint, c_int, c_uint, c_uint,
                                     POINTER(c_uint), c_void_p]
        # AUDIO_OUTPUT_SYNCHRONOUS; INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT
        self.rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0x8001)
        if self.rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.rate})")
        self._pcm: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._cb = _CALLBACK(self._on_audio)  # keep a reference: eSpeak holds the pointer
        lib.espeak_SetSynthCallback(self._cb)

    def _on_audio(self, wav, n, events) -> int:
        if wav and n > 0:
            self._pcm.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode("ascii")))
            i += 1
        return 0

    def set_voice(self, voice: str, *, rate: int, pitch: int, pitch_range: int) -> None:
        """Select ``voice`` (e.g. ``en-us+m3``) and its rate (wpm), pitch and range (0-99)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"eSpeak has no voice {voice!r}")
        for param, value in ((1, rate), (3, pitch), (4, pitch_range)):  # RATE, PITCH, RANGE
            self.lib.espeak_SetParameter(param, int(value), 0)

    def set_prosody(self, *, rate: int, pitch: int) -> None:
        """Change the rate (wpm) and base pitch (0-99) of the current voice."""
        for param, value in ((1, rate), (3, pitch)):  # RATE, PITCH
            self.lib.espeak_SetParameter(param, int(value), 0)

    def synth(self, text: str, seed: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
        """Speak ``text`` after reseeding; returns (int16 pcm (T,), [(onset sample, mnemonic)])."""
        self._pcm, self._events = [], []
        self.lib.espeak_ng_SetRandSeed(seed)
        if self.libc is not None:  # klatt voices draw from rand()
            self.libc.srand(ctypes.c_uint(seed))
        buf = text.encode("utf-8") + b"\0"
        # POS_CHARACTER = 1, espeakCHARS_UTF8 = 1
        err = self.lib.espeak_Synth(buf, len(buf), 0, 1, 0, 1, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) on {text!r}")
        pcm = np.concatenate(self._pcm) if self._pcm else np.zeros(0, np.int16)
        return pcm, self._events


def phone_segments(events: list[tuple[int, str]], n_in: int, rate_in: int, n_speech: int,
                   pad: int) -> list[tuple[int, int, str]]:
    """Phone events of one utterance -> contiguous (start, end, phone) in output samples.

    Args:
        events: (onset sample at ``rate_in``, eSpeak mnemonic) in time order.
        n_in: length of the synthesised audio at ``rate_in``.
        rate_in: eSpeak's rate (22050 Hz).
        n_speech: length of the resampled speech at `SAMPLE_RATE` (before padding).
        pad: samples of silence added at both ends.
    Returns:
        Segments covering [0, n_speech + 2 * pad) exactly, SIL at both ends, no zero-length ones,
        ``;`` merged into the phone before it, neighbouring SIL merged, and the audio after the
        last event (the tail of echo voices) labelled SIL.
    """
    def to_out(s: int) -> int:
        return pad + min(n_speech, round(min(s, n_in) * SAMPLE_RATE / rate_in))

    bounds = [(0, "SIL")]
    for sample, mnemonic in events:
        phone = map_phone(mnemonic)
        if phone != _LINK:  # a linking phone's time stays with the phone before it
            bounds.append((to_out(sample), phone))
    bounds.append((pad + n_speech, "SIL"))  # trailing pad (and the tail of echo voices)
    ends = [b[0] for b in bounds[1:]] + [n_speech + 2 * pad]
    segs: list[tuple[int, int, str]] = []
    for (start, phone), stop in zip(bounds, ends):
        if stop <= start:
            continue
        if segs and phone == "SIL" and segs[-1][2] == "SIL":
            segs[-1] = (segs[-1][0], stop, "SIL")
        else:
            segs.append((start, stop, phone))
    return segs


def synthesize_speaker(task: dict) -> tuple[str, list[tuple[str, int, list[tuple[int, int, str]]]]]:
    """Synthesise one speaker's utterances into ``task["wav_dir"]`` (run in a fresh process).

    Args:
        task: ``speaker`` (id), ``voice``, ``rate``, ``pitch``, ``range``, ``seed`` (int),
            ``wav_dir`` (str) and ``utts``: [(utt id, text, rate, pitch)] in the order to
            synthesise them (rate and pitch may differ from the voice's for a second reading).
    Returns:
        (speaker, [(utt, n_samples at 16 kHz, segments)]) with segments as in `phone_segments`;
        the wavs are written as ``wav_dir/<utt>.wav`` (16 kHz, 16-bit PCM).
    """
    engine = Espeak()
    engine.set_voice(task["voice"], rate=task["rate"], pitch=task["pitch"],
                     pitch_range=task["range"])
    pad = round(PAD_S * SAMPLE_RATE)
    out = []
    current = (task["rate"], task["pitch"])
    for utt, text, rate, pitch in task["utts"]:
        if (rate, pitch) != current:  # only when it changes: first readings keep v1's calls
            engine.set_prosody(rate=rate, pitch=pitch)
            current = (rate, pitch)
        pcm, events = engine.synth(text, utterance_seed(task["seed"], utt))
        speech = resample(pcm.astype(np.float32) / 32768.0, engine.rate, SAMPLE_RATE)  # (T,)
        wav = np.concatenate([np.zeros(pad, np.float32), speech, np.zeros(pad, np.float32)])
        save_audio(Path(task["wav_dir"]) / f"{utt}.wav", wav, SAMPLE_RATE)
        out.append((utt, len(wav), phone_segments(events, len(pcm), engine.rate, len(speech), pad)))
    return task["speaker"], out


def utterance_seed(seed: int, utt: str) -> int:
    """The per-utterance seed of eSpeak's and libc's PRNGs: a stable hash of (seed, utt)."""
    return zlib.crc32(f"{seed}/{utt}".encode()) & 0x7FFFFFFF
