"""SpeechWorld: spoken ShapesWorld sentences, commands and numbers with exact transcripts, and an ASR judge."""

from dina.data.speech.asr import AsrConfig, AsrJudge, transcribe
from dina.data.speech.world import SpeechWorld, generate, generate_world

__all__ = ["AsrConfig", "AsrJudge", "SpeechWorld", "generate", "generate_world", "transcribe"]
