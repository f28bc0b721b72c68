"""`dina audio eval`: how much of a clip survives the audio tokenizer (report Sec. 2.3, 4.1.2).

The report trains its tokenizer on mel reconstruction (Sec. 2.3, eq. 8; Sec. 4.1.2) and keeps
"both semantic and acoustic information"; the audio issue (issue 4, its metrics) asks for the
figures that show it.
Every clip of a SpeechWorld manifest is encoded, decoded (`AudioTokenizer.decode`) and scored:

- mel fidelity, with the tokenizer's own Whisper-scaled log-mel front end: `mel_l1` compares the
  original clip with the reconstructed wave; `mel_l1_decoder` compares it with the decoded mel
  (`AudioTokenizer.decode_mel`, before the vocoder), so the gap between the two is the vocoder's;
- `mel_cepstral_distortion` and `mel_cepstral_distortion_decoder` (dB) on the same two pairs;
- codebook health: the fraction of each level's codes used over the set, and its perplexity;
- rates: tokens per second, from the codes and the sample counts (12.5 by construction), bits/s;
- intelligibility: the Whisper tiny.en judge (`dina.data.speech.asr`) transcribes original and
  reconstructed clips; corpus WER against the manifest text, overall and per voice;
- speaker similarity: cosine of Resemblyzer d-vectors of original and reconstruction (an
  optional dependency; null with a note when it cannot be imported);
- speed: encode and decode real-time factors (audio seconds per compute second, "× real time"),
  and the first-chunk latency of streaming waveform decode (`first_chunk_latency_ms`).

Departures and choices: all mel figures cover the frames of the original length (T // 160), so
the three mels are aligned frame by frame and no DTW is needed; set-level mel figures are means
over all frames of the set (longer clips weigh more). Wave lengths match the original because
`decode` cuts the padded tail. MCD uses the real cepstra of the log mel amplitude, not SPTK mel-cepstra (see
`mcd_per_frame`). The report gives no tokenizer metrics of its own: the judges are small and
independent of dina (Whisper tiny.en for WER, Resemblyzer's 2018-style d-vector for speakers,
where speech-codec papers often use a WavLM speaker verifier), so their numbers compare runs of
dina, not published codecs.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dina.audio.config import WAVE_FROM_MEL
from dina.audio.data import SpeechClip, load_speech
from dina.audio.encoder import SAMPLES_PER_TOKEN
from dina.audio.mel import MelConfig
from dina.audio.tokenizer import SAMPLE_RATE, AudioCodes, AudioTokenizer
from dina.data.speech.textnorm import corpus_wer, normalize_text
from dina.errors import BadArgument
from dina.quantize import code_usage

FIRST_CHUNK_TOKENS = 4  # 320 ms of speech: the first chunk pushed into the streaming decoder
MCD_COEFFICIENTS = 12  # mel-cepstral coefficients c1..c12 (c0, the overall level, is left out)


@dataclass(frozen=True, kw_only=True)
class Reconstruction:
    """One clip after encode + decode, with its mel figures summed over its F frames."""

    codes: AudioCodes
    wave: np.ndarray  # (T,) float32, the original length
    encode_s: float
    decode_s: float
    frames: int
    mel_l1_sum: float  # per-frame mean |Δ| summed over frames
    mel_l1_decoder_sum: float
    mcd_sum: float
    mcd_decoder_sum: float


# ---- mel figures -----------------------------------------------------------------------------


def _dct_ii(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (n, n): C[k, m] = sqrt((1 if k = 0 else 2) / n) cos(π k (2m + 1) / 2n)."""
    k, m = np.arange(n)[:, None], np.arange(n)[None, :]
    basis = np.cos(np.pi * k * (2 * m + 1) / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis


def mcd_per_frame(mel_a_MF: torch.Tensor, mel_b_MF: torch.Tensor, config: MelConfig | None = None) -> np.ndarray:
    """Mel-cepstral distortion in dB of each frame of two aligned Whisper-scaled log-mels, shape (F,).

    The Whisper scaling is undone to the natural log of the mel *amplitude*,
    L_m = ½ ln P_m = ½ (scale · x_m - offset) · ln 10, m = 0 … M-1. Its real cepstrum (of the
    half-sample symmetric extension, as a log spectrum is symmetric) is
    c_n = (1/M) Σ_m L_m cos(π n (m + ½) / M), i.e. the orthonormal DCT-II divided by sqrt(2M);
    with c_1 … c_12 (c_0, the level, left out), MCD = (10 / ln 10) · sqrt(2 Σ_n (c_n - c'_n)²).
    The mels must be aligned (same F); `evaluate_audio` aligns them by length, so no DTW is used.

    Departure: the classic MCD takes SPTK mel-cepstra (an all-pass frequency warping of the
    log amplitude spectrum of each frame); these are the real cepstra of the 80-bin Slaney mel
    envelope, the same scale and formula without SPTK, so values are comparable, not equal.
    """
    config = config or MelConfig()
    if mel_a_MF.shape != mel_b_MF.shape or mel_a_MF.ndim != 2:
        raise BadArgument(f"MCD needs two aligned (M, F) mels, got {tuple(mel_a_MF.shape)} and {tuple(mel_b_MF.shape)}")
    diff_MF = (mel_a_MF.double() - mel_b_MF.double()).cpu().numpy() * config.scale * math.log(10.0) / 2
    M = diff_MF.shape[0]
    ceps_CF = _dct_ii(M)[1 : MCD_COEFFICIENTS + 1] @ diff_MF / math.sqrt(2 * M)  # the offset only moves c0
    return (10.0 / math.log(10.0)) * np.sqrt(2.0 * (ceps_CF**2).sum(axis=0))


def mel_cepstral_distortion(mel_a_MF: torch.Tensor, mel_b_MF: torch.Tensor, config: MelConfig | None = None) -> float:
    """The mean over frames of `mcd_per_frame` (dB): 0 for identical mels."""
    return float(mcd_per_frame(mel_a_MF, mel_b_MF, config).mean())


@torch.no_grad()
def reconstruct(
    tokenizer: AudioTokenizer,
    wave_T: np.ndarray,
    *,
    refine: bool | None = None,
    temperature: float = 1.0,
    wave_from_mel: str | None = None,
) -> Reconstruction:
    """Encode and decode one 16 kHz clip (timed), and compare the mels over its T // 160 frames."""
    start = time.perf_counter()
    codes = tokenizer.encode(wave_T, SAMPLE_RATE)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()  # decode's two steps, keeping the decoded mel for the figures below
    mel_MF = tokenizer.decode_mel(codes, refine=refine, temperature=temperature)
    wave = tokenizer.mel_to_wave(mel_MF, wave_from_mel)[: codes.num_samples].numpy().astype(np.float32)
    decode_s = time.perf_counter() - start
    front_end, cfg = tokenizer.front_end, tokenizer.config.mel
    original_MF = front_end(torch.from_numpy(wave_T))[0]
    frames = original_MF.shape[1]
    rebuilt_MF = front_end(torch.from_numpy(wave))[0]
    decoded_MF = mel_MF[:, :frames]
    return Reconstruction(
        codes=codes,
        wave=wave,
        encode_s=encode_s,
        decode_s=decode_s,
        frames=frames,
        mel_l1_sum=float((original_MF - rebuilt_MF).abs().mean(0).sum()),
        mel_l1_decoder_sum=float((original_MF - decoded_MF).abs().mean(0).sum()),
        mcd_sum=float(mcd_per_frame(original_MF, rebuilt_MF, cfg).sum()),
        mcd_decoder_sum=float(mcd_per_frame(original_MF, decoded_MF, cfg).sum()),
    )


# ---- codes -----------------------------------------------------------------------------------


def codebook_stats(codes: Sequence[AudioCodes], codebook_sizes: Sequence[int]) -> dict[str, list[float]]:
    """Per level over all clips: the fraction of the level's K codes used, and exp(entropy) of its histogram."""
    usage, perplexity = code_usage(torch.cat([c.codes for c in codes]), codebook_sizes)
    return {"codebook_usage": [round(u, 5) for u in usage], "codebook_perplexity": [round(p, 3) for p in perplexity]}


def token_rates(codes: Sequence[AudioCodes], codebook_sizes: Sequence[int]) -> dict[str, float]:
    """Tokens per second of audio, from the token counts and the clips' sample counts.

    `tokens_per_second` divides by the length padded to whole 80 ms tokens (ceil(T / 1280) · 1280
    samples), so it is 12.5 exactly when every clip has one token per 1280 samples;
    `tokens_per_second_unpadded` divides by the clips' own length. Bits per second count
    log2(K) bits per level per token.
    """
    tokens = sum(c.codes.shape[0] for c in codes)
    padded_samples = sum(-(-c.num_samples // SAMPLES_PER_TOKEN) * SAMPLES_PER_TOKEN for c in codes)
    tokens_per_second = tokens * SAMPLE_RATE / padded_samples  # one rounding: exactly 12.5 when it should be
    return {
        "tokens": tokens,
        "tokens_per_second": tokens_per_second,
        "tokens_per_second_unpadded": tokens * SAMPLE_RATE / sum(c.num_samples for c in codes),
        "bits_per_second": tokens_per_second * sum(math.log2(k) for k in codebook_sizes),
    }


# ---- streaming -------------------------------------------------------------------------------


def first_chunk_latency_ms(
    tokenizer: AudioTokenizer, codes: AudioCodes, *, refine: bool | None = None, repeats: int = 3
) -> float:
    """Milliseconds from pushing the first `FIRST_CHUNK_TOKENS` codes into a fresh
    `dina.audio.stream.StreamingWaveDecoder` (with or without the mel refiner; None: as decode) until it returns
    its first wave samples.

    If the first chunk gives no samples yet (look-ahead), the next tokens are pushed one at a
    time, then `flush`, until samples come out: later codes count as already generated, so this
    is the decoder's compute latency, not the language model's. Building the decoder is not
    timed. One warm-up run, then the median of `repeats`.
    """
    from dina.audio import stream

    codes_TL = codes.codes

    def once() -> float:
        decoder = stream.StreamingWaveDecoder(tokenizer, refine=refine)
        start = time.perf_counter()
        out, t = decoder.push(codes_TL[:FIRST_CHUNK_TOKENS]), FIRST_CHUNK_TOKENS
        while out.numel() == 0 and t < codes_TL.shape[0]:
            out, t = decoder.push(codes_TL[t : t + 1]), t + 1
        if out.numel() == 0:
            decoder.flush()
        return time.perf_counter() - start

    with torch.no_grad():
        once()
        return round(1000.0 * statistics.median(once() for _ in range(repeats)), 2)


# ---- judges ----------------------------------------------------------------------------------


def judge_wer(clips: Sequence[SpeechClip], recons: Sequence[Reconstruction]) -> dict[str, Any]:
    """Whisper tiny.en transcribes originals and reconstructions; corpus WER on normalized text."""
    from dina.data.speech.asr import AsrConfig, AsrJudge

    judge = AsrJudge(AsrConfig(cpu_threads=torch.get_num_threads()))
    refs = [normalize_text(c.text) for c in clips]
    hyp_orig = [normalize_text(judge.transcribe_wave(c.wave)) for c in clips]
    hyp_rec = [normalize_text(judge.transcribe_wave(r.wave)) for r in recons]
    by_voice: dict[str, dict[str, float]] = {}
    for voice in sorted({c.voice for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.voice == voice]
        by_voice[voice] = {
            "original": round(corpus_wer((refs[i], hyp_orig[i]) for i in idx), 4),
            "reconstructed": round(corpus_wer((refs[i], hyp_rec[i]) for i in idx), 4),
        }
    return {
        "judge_wer_original": round(corpus_wer(zip(refs, hyp_orig, strict=True)), 4),
        "judge_wer_reconstructed": round(corpus_wer(zip(refs, hyp_rec, strict=True)), 4),
        "judge_wer_by_voice": by_voice,
        "hypotheses_reconstructed": hyp_rec,
    }


def speaker_similarity(
    originals: Sequence[np.ndarray], rebuilt: Sequence[np.ndarray]
) -> tuple[list[float], str | None]:
    """Per-clip cosine of Resemblyzer's VoiceEncoder d-vectors (16 kHz waves), or ([], why not).

    Each wave is clipped to [-1, 1] and goes through `resemblyzer.preprocess_wav` (volume
    normalization, VAD trimming of long silences); a clip the VAD empties is embedded untrimmed.
    A silent reconstruction scores 0. The weights ship inside the package: nothing is downloaded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder, preprocess_wav
        encoder = VoiceEncoder("cpu", verbose=False)
    except Exception as e:  # an optional dependency: any failure to import or load is reported, not raised
        return [], f"resemblyzer unavailable: {type(e).__name__}: {e}"

    def embed(wave: np.ndarray) -> np.ndarray | None:
        wave = np.clip(wave, -1.0, 1.0).astype(np.float32)
        if not np.any(wave):
            return None
        trimmed = preprocess_wav(wave)
        return encoder.embed_utterance(trimmed if trimmed.size >= SAMPLE_RATE // 10 else wave)

    sims = []
    for a, b in zip(originals, rebuilt, strict=True):
        ea, eb = embed(a), embed(b)
        if ea is None or eb is None:
            sims.append(0.0)
        else:
            sims.append(float(ea @ eb / (np.linalg.norm(ea) * np.linalg.norm(eb))))
    return sims, None


# ---- the whole evaluation --------------------------------------------------------------------


def _per_clip(clip: SpeechClip, rec: Reconstruction) -> dict[str, Any]:
    return {
        "path": clip.path,
        "voice": clip.voice,
        "seconds": round(clip.wave.size / SAMPLE_RATE, 3),
        "tokens": int(rec.codes.codes.shape[0]),
        "mel_l1": round(rec.mel_l1_sum / rec.frames, 5),
        "mel_l1_decoder": round(rec.mel_l1_decoder_sum / rec.frames, 5),
        "mel_cepstral_distortion": round(rec.mcd_sum / rec.frames, 4),
    }


def _summary(tokenizer: AudioTokenizer, clips: list[SpeechClip], recons: list[Reconstruction]) -> dict[str, Any]:
    """The set-level mel, codebook, rate and speed figures."""
    frames = sum(r.frames for r in recons)
    seconds = sum(c.wave.size for c in clips) / SAMPLE_RATE
    codes = [r.codes for r in recons]
    return {
        "clips": len(clips),
        "seconds": round(seconds, 3),
        "threads": torch.get_num_threads(),
        "mel_l1": sum(r.mel_l1_sum for r in recons) / frames,
        "mel_l1_decoder": sum(r.mel_l1_decoder_sum for r in recons) / frames,
        "mel_cepstral_distortion": sum(r.mcd_sum for r in recons) / frames,
        "mel_cepstral_distortion_decoder": sum(r.mcd_decoder_sum for r in recons) / frames,
        **codebook_stats(codes, tokenizer.config.codebook_sizes),
        **token_rates(codes, tokenizer.config.codebook_sizes),
        "encode_rtf": seconds / sum(r.encode_s for r in recons),
        "decode_rtf": seconds / sum(r.decode_s for r in recons),
    }


def evaluate_audio(
    tokenizer: AudioTokenizer,
    data: str | Path,
    *,
    limit: int | None = None,
    judge: bool = True,
    refine: bool | None = None,
    temperature: float = 1.0,
    wave_from_mel: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Every figure of `dina audio eval` on the clips of a SpeechWorld manifest (see the module docstring).

    `wave_from_mel` ("vocoder" or "griffin-lim") overrides the tokenizer's own choice.

    The speed figures are measured in this process on `torch.get_num_threads()` threads; the
    first-chunk latency streams the first clip's codes. With `judge` False the WER fields are null.
    """
    wave_from_mel = wave_from_mel or tokenizer.config.wave_from_mel
    if wave_from_mel not in WAVE_FROM_MEL:
        raise BadArgument(f"wave_from_mel must be one of {', '.join(WAVE_FROM_MEL)}, got {wave_from_mel!r}")
    tokenizer.eval()
    refine = tokenizer.refines(refine)
    clips = load_speech(data, limit=limit)
    recons = []
    for i, clip in enumerate(clips):
        recons.append(
            reconstruct(tokenizer, clip.wave, refine=refine, temperature=temperature, wave_from_mel=wave_from_mel)
        )
        if progress:
            mel_l1 = recons[-1].mel_l1_sum / recons[-1].frames
            print(f"[{i + 1}/{len(clips)}] {clip.path}: mel L1 {mel_l1:.4f}", file=sys.stderr, flush=True)
    result = {
        "refine": refine,
        "temperature": temperature if refine else None,
        "vocoder": wave_from_mel,
        **_summary(tokenizer, clips, recons),
    }
    streams = wave_from_mel == "vocoder"  # Griffin-Lim iterates over the whole clip: no streaming
    latency = first_chunk_latency_ms(tokenizer, recons[0].codes, refine=refine) if streams else None
    result["first_chunk_tokens"] = FIRST_CHUNK_TOKENS
    result["first_chunk_latency_ms"] = latency
    per_clip = [_per_clip(c, r) for c, r in zip(clips, recons, strict=True)]
    sims, note = speaker_similarity([c.wave for c in clips], [r.wave for r in recons])
    result["speaker_similarity"] = float(np.mean(sims)) if sims else None
    result["speaker_similarity_note"] = note
    for i, row in enumerate(per_clip):
        row["speaker_similarity"] = round(sims[i], 4) if sims else None
    wer: dict[str, Any] = dict.fromkeys(("judge_wer_original", "judge_wer_reconstructed", "judge_wer_by_voice"))
    if judge:
        wer = judge_wer(clips, recons)
        for row, hyp in zip(per_clip, wer.pop("hypotheses_reconstructed"), strict=True):
            row["hypothesis_reconstructed"] = hyp
    result |= wer
    result["judge_note"] = None if judge else "judge disabled (--no-judge)"
    result["per_clip"] = per_clip
    return result
