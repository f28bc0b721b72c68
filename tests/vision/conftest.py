"""Shared fixtures of the vision tests."""

import pytest
import torch

from dina.data.shapes import generate
from dina.vision.config import vision_tiny
from dina.vision.data import load_images
from dina.vision.tokenizer import VisionTokenizer
from dina.vision.train import cache_features


@pytest.fixture(scope="module")
def shapes_world(tmp_path_factory):
    """(data dir, model, records): 8 ShapesWorld images (5 with a sign) and an untrained tiny
    tokenizer whose projection statistics come from their features."""
    data = generate(tmp_path_factory.mktemp("shapes"), 8, seed=3)
    torch.manual_seed(0)
    model = VisionTokenizer(vision_tiny()).eval()
    records = load_images(data)
    model.quant_proj.set_statistics(torch.cat(cache_features(model, records)))
    return data, model, records
