"""Offline text-to-speech engines behind one interface: text in, a mono waveform at the engine's rate out.

Four engines, so that whole engines or single voices can be held out of training:

- `hibari`: a small neural voice (24 kHz, ONNX). Only the "heart" model ships inside the
  package; "heart" speaks with American and "heart-gb" with British spelling-to-sound
  rules. Hibari's other voices are used only when already in its cache (HIBARI_HOME),
  since dina never downloads at run time. Its noise source is seeded from the text, so
  it is deterministic.
- `flite`: CMU Flite's voices awb, rms, slt (16 kHz) and kal (8 kHz diphone).
- `festival`: the HTS voice cmu_us_slt_arctic_hts (Debian `festvox-us-slt-hts`, 32 kHz)
  and the default diphone voice kal_diphone (16 kHz).
- `espeak-ng`: formant voices and variants (22.05 kHz).

The command-line engines are deterministic (same text, same bytes), checked in
`tests/data/test_speech_engines.py`.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from dina.errors import BadArgument, MissingDependency


@dataclass(frozen=True, kw_only=True)
class Voice:
    """One speaker: an engine and one of its voices, written "engine/name"."""

    engine: str
    name: str

    @property
    def id(self) -> str:
        return f"{self.engine}/{self.name}"


@dataclass(frozen=True, kw_only=True)
class Synthesis:
    """An engine's raw output: wave (T,) float32 at `sample_rate` Hz."""

    wave: np.ndarray
    sample_rate: int


class Engine(ABC):
    """A TTS engine: which voices it has, its version (part of the cache key), and synthesis."""

    name: str
    known_voices: tuple[str, ...]

    @abstractmethod
    def available(self) -> bool:
        """Whether the engine is installed at all."""

    @abstractmethod
    def version(self) -> str:
        """A string that changes whenever the engine's output may change."""

    def installed_voices(self) -> tuple[str, ...]:
        """The known voices that can be used on this machine (all of them, by default)."""
        return self.known_voices

    @abstractmethod
    def synthesize(self, voice: str, text: str) -> Synthesis:
        """Speak `text` with `voice`; raises `MissingDependency` if the engine fails."""


def _run(cmd: list[str], stdin: str | None = None, *, any_exit: bool = False) -> str:
    """Run a command, returning stdout and stderr; `any_exit` accepts a non-zero exit (`flite --version`)."""
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MissingDependency(f"{cmd[0]} could not run: {e}") from e
    if done.returncode != 0 and not any_exit:
        raise MissingDependency(f"{' '.join(cmd[:3])} ... failed (exit {done.returncode}): {done.stderr.strip()[:200]}")
    return done.stdout + done.stderr


def _run_to_wav(cmd_for: Callable[[str], list[str]], stdin: str | None = None) -> Synthesis:
    """Run `cmd_for(wav_path)` and read the WAV it writes."""
    with tempfile.TemporaryDirectory(prefix="dina-tts-") as tmp:
        wav_path = Path(tmp) / "out.wav"
        _run(cmd_for(str(wav_path)), stdin=stdin)
        try:
            wave, sr = sf.read(str(wav_path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise MissingDependency(f"{cmd_for('')[0]} wrote no readable audio: {e}") from e
    return Synthesis(wave=wave.mean(axis=1), sample_rate=int(sr))


class FliteEngine(Engine):
    name = "flite"
    known_voices = ("awb", "rms", "slt", "kal")

    def available(self) -> bool:
        return shutil.which("flite") is not None

    @functools.cache  # noqa: B019 - engines are module-level singletons
    def version(self) -> str:
        return _run(["flite", "--version"], any_exit=True).strip()

    @functools.cache  # noqa: B019
    def installed_voices(self) -> tuple[str, ...]:
        listed = _run(["flite", "-lv"]).split(":", 1)[-1].split()
        return tuple(v for v in self.known_voices if v in listed)

    def synthesize(self, voice: str, text: str) -> Synthesis:
        return _run_to_wav(lambda wav: ["flite", "-voice", voice, "-t", text, "-o", wav])


class EspeakEngine(Engine):
    name = "espeak-ng"
    # Two accents and male/female variants of the default voice.
    known_voices = ("en-us", "en-gb", "en+f3", "en+m3", "en-us+f4", "en-gb-scotland")

    def available(self) -> bool:
        return shutil.which("espeak-ng") is not None

    @functools.cache  # noqa: B019
    def version(self) -> str:
        return _run(["espeak-ng", "--version"]).strip()

    def synthesize(self, voice: str, text: str) -> Synthesis:
        return _run_to_wav(lambda wav: ["espeak-ng", "-v", voice, "-w", wav, text])


class FestivalEngine(Engine):
    name = "festival"
    known_voices = ("cmu_us_slt_arctic_hts", "kal_diphone")

    def available(self) -> bool:
        return shutil.which("text2wave") is not None and shutil.which("festival") is not None

    @functools.cache  # noqa: B019
    def version(self) -> str:
        return _run(["festival", "--version"]).strip()

    @functools.cache  # noqa: B019
    def installed_voices(self) -> tuple[str, ...]:
        # Festival prints its voice list as a Lisp list: (cmu_us_slt_arctic_hts kal_diphone).
        listed = _run(["festival", "-b", "(print (voice.list))"]).replace("(", " ").replace(")", " ").split()
        return tuple(v for v in self.known_voices if v in listed)

    def synthesize(self, voice: str, text: str) -> Synthesis:
        return _run_to_wav(lambda wav: ["text2wave", "-eval", f"(voice_{voice})", "-o", wav], stdin=text + "\n")


class HibariEngine(Engine):
    name = "hibari"
    known_voices = ("heart", "heart-gb", "emma", "fable", "fenrir", "kore")
    _BUNDLED = ("heart", "heart-gb")

    def __init__(self) -> None:
        self._local = threading.local()  # one model per worker thread: the G2P is not thread-safe

    def available(self) -> bool:
        try:
            import hibari  # noqa: F401
        except ImportError:
            return False
        return True

    def version(self) -> str:
        import hibari

        return f"hibari-{hibari.__version__}"

    def installed_voices(self) -> tuple[str, ...]:
        return tuple(v for v in self.known_voices if v in self._BUNDLED or self._cached_model(v) is not None)

    @staticmethod
    def _cached_model(voice: str) -> str | None:
        from hibari.voices import voice_path

        try:
            return voice_path(voice, download_missing=False)
        except (FileNotFoundError, ValueError):
            return None

    def _model(self, voice: str):
        models = self._local.__dict__.setdefault("models", {})
        if voice not in models:
            from hibari import Hibari
            from hibari.g2p import G2P

            if voice in self._BUNDLED:
                models[voice] = Hibari(voice="heart", g2p=G2P(british=voice.endswith("-gb")))
            else:
                path = self._cached_model(voice)
                if path is None:
                    raise MissingDependency(f"hibari voice {voice!r} is not in hibari's cache (dina never downloads)")
                models[voice] = Hibari(voice=voice, model=path)
        return models[voice]

    def synthesize(self, voice: str, text: str) -> Synthesis:
        model = self._model(voice)
        # Hibari draws noise for its unvoiced excitation; a seed from the text makes it repeatable.
        seed = int.from_bytes(hashlib.sha256(f"{voice}\n{text}".encode()).digest()[:8], "little")
        wave = model(text, seed=seed)
        return Synthesis(wave=np.asarray(wave, dtype=np.float32), sample_rate=int(model.sample_rate))


ENGINES: dict[str, Engine] = {e.name: e for e in (HibariEngine(), FliteEngine(), FestivalEngine(), EspeakEngine())}


@dataclass(frozen=True, kw_only=True)
class VoiceSelection:
    """The voices to use, and a warning for each engine or voice that was skipped."""

    voices: tuple[Voice, ...]
    warnings: tuple[str, ...]


def _default_voices() -> VoiceSelection:
    voices, warnings = [], []
    for engine in ENGINES.values():
        if not engine.available():
            warnings.append(f"{engine.name} is not installed, skipped")
            continue
        installed = engine.installed_voices()
        for name in engine.known_voices:
            if name in installed:
                voices.append(Voice(engine=engine.name, name=name))
            elif not (engine.name == "hibari" and name not in HibariEngine._BUNDLED):
                warnings.append(f"{engine.name}/{name} is not installed, skipped")
    return VoiceSelection(voices=tuple(voices), warnings=tuple(warnings))


def parse_voice(spec: str) -> Voice:
    """'flite/slt' -> Voice, checking the engine and voice are installed (else `MissingDependency`)."""
    engine_name, _, name = spec.strip().partition("/")
    if engine_name not in ENGINES or not name:
        raise BadArgument(f"voice {spec!r} must be engine/voice with engine one of {', '.join(ENGINES)}")
    engine = ENGINES[engine_name]
    if name not in engine.known_voices:
        raise BadArgument(f"unknown {engine_name} voice {name!r}; known: {', '.join(engine.known_voices)}")
    if not engine.available():
        raise MissingDependency(f"TTS engine {engine_name} is not installed (asked for {spec})")
    if name not in engine.installed_voices():
        raise MissingDependency(f"voice {spec} is not installed")
    return Voice(engine=engine_name, name=name)


def select_voices(specs: list[str] | tuple[str, ...] | None = None) -> VoiceSelection:
    """The voices asked for (all must be installed), or every installed voice with warnings for the rest."""
    if specs is None:
        selection = _default_voices()
    elif not specs:
        raise BadArgument("the voice list is empty")
    else:
        voices = tuple(dict.fromkeys(parse_voice(s) for s in specs))
        selection = VoiceSelection(voices=voices, warnings=())
    if not selection.voices:
        raise MissingDependency("no TTS engine is installed (need hibari-tts, flite, festival or espeak-ng)")
    return selection
