"""Configs: presets round-trip through JSON, derived sizes match the release, bad values are refused."""

import dataclasses
import dataclasses as dc
import json

import pytest

from dina.audio.config import audio_tiny
from dina.audio.mel import MelConfig
from dina.config import BackboneConfig, DinaConfig, VocabConfig
from dina.errors import BadConfig, BadInputFile
from dina.presets import PRESETS, get_preset, longcat_next, tiny
from dina.vision.config import vision_tiny


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(tmp_path, name):
    config = get_preset(name)
    assert DinaConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    config.save(tmp_path)
    assert DinaConfig.load(tmp_path) == config


def test_release_vocabulary_layout():
    """release §1: audio at 131125, visual at 150581, table padded to 282624."""
    vocab = longcat_next().vocab
    assert vocab.audio_offset == 131125
    assert vocab.visual_offset == 150581
    assert vocab.size == 282624
    assert vocab.level_offsets("audio")[:4] == (131125, 139317, 143413, 145461)
    assert vocab.level_offsets("visual")[1] == 150581 + 16384


def test_release_rates():
    config = longcat_next()
    assert config.audio.frame_rate == 12.5
    assert config.vision.token_px == 28
    assert tiny().audio.frame_rate == 12.5 and tiny().vision.token_px == 28


def test_configs_are_frozen_and_keyword_only():
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny().backbone.dim = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        BackboneConfig(3072)  # type: ignore[misc]


@pytest.mark.parametrize(
    "make",
    [
        lambda: BackboneConfig(dim=100, n_heads=3),
        lambda: BackboneConfig(attention="linear"),
        lambda: BackboneConfig(n_heads=32, n_kv_heads=5),
        lambda: BackboneConfig(top_k=0),
        lambda: dc.replace(vision_tiny(), decoder=dc.replace(vision_tiny().decoder, code_dim=32)),
        lambda: dc.replace(vision_tiny(), refiner=dc.replace(vision_tiny().refiner, cond_dim=32)),
        lambda: dc.replace(vision_tiny(), quant_whiten=1.5),
        lambda: dc.replace(vision_tiny(), quant_proj="mlp"),  # quant_whiten is for "pca" only
        lambda: dc.replace(audio_tiny(), mel=MelConfig(n_mels=128)),
        lambda: dc.replace(audio_tiny(), rvq=dc.replace(audio_tiny().rvq, dim=256)),
        lambda: VocabConfig(n_special=3),
        lambda: DinaConfig(vocab=VocabConfig(visual_codebook_sizes=(1024,) * 8)),
    ],
)
def test_inconsistent_configs_are_refused(make):
    with pytest.raises(BadConfig):
        make()


def test_unknown_fields_and_wrong_type_are_refused(tmp_path):
    with pytest.raises(BadConfig, match="unknown field"):
        BackboneConfig.from_dict({"dim": 64, "n_heads": 4, "bogus": 1})
    tiny().backbone.save(tmp_path)
    with pytest.raises(BadConfig, match="holds a BackboneConfig"):
        DinaConfig.load(tmp_path)
    with pytest.raises(BadInputFile):
        DinaConfig.load(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BadConfig, match="not valid JSON"):
        DinaConfig.load(tmp_path)


def test_unknown_preset():
    with pytest.raises(BadConfig, match="unknown preset"):
        get_preset("huge")
