"""ShapesWorld: seeded images of colored shapes and a sign, with text whose meaning is exact, and a judge.

scene.py   palette, shapes, regions, sizes; Scene / ShapeObject / Sign / Background
sample.py  a random scene from a numpy Generator (layout rules that keep scenes parseable)
render.py  scene -> (H, W, 3) uint8 pixels
text.py    captions, VQA pairs, text-to-image prompts
world.py   `generate`: PNGs + manifest.jsonl for a split
judge.py   `parse_image` (pixels -> scene), GenEval-style `score_image`, `judge_images`, `judge_manifest`
ocr.py     reading a sign's word with tesseract
labels.py  what is under every pixel (background, plate, shape, character), per token cell
"""

from dina.data.shapes.judge import judge_images, judge_manifest, parse_image, score_image, score_scene
from dina.data.shapes.render import render
from dina.data.shapes.sample import sample_scene
from dina.data.shapes.scene import Background, Scene, ShapeObject, Sign
from dina.data.shapes.world import generate, make_example

__all__ = [
    "Background",
    "Scene",
    "ShapeObject",
    "Sign",
    "generate",
    "judge_images",
    "judge_manifest",
    "make_example",
    "parse_image",
    "render",
    "sample_scene",
    "score_image",
    "score_scene",
]
