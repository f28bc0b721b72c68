"""ShapesWorld text: captions, questions and prompts must say what the scene holds, and only that."""

from __future__ import annotations

import numpy as np

from dina.data.shapes import Scene, ShapeObject, Sign, make_example
from dina.data.shapes.text import captions, prompt, qa_pairs, region_phrase


def _scene(*objects, sign=None):
    return Scene(width=336, height=336, objects=tuple(objects), sign=sign)


RED_STAR = ShapeObject(shape="star", color="red", size="large", region="top left")
BLUE_CIRCLE = ShapeObject(shape="circle", color="blue", size="small", region="top right")
GREEN_CROSS = ShapeObject(shape="cross", color="green", size="small", region="bottom")


def test_captions_and_prompt_name_every_object_and_the_sign():
    scene = _scene(RED_STAR, BLUE_CIRCLE, GREEN_CROSS, sign=Sign(text="STOP", region="center"))
    for text in [*captions(scene), prompt(scene)]:
        for obj in scene.objects:
            assert obj.name in text
        assert '"STOP"' in text
    assert "large red star in the top left" in prompt(scene)
    assert "small green cross at the bottom" in prompt(scene)
    assert len(set(captions(scene))) == len(captions(scene)), "phrasings differ"


def test_relation_questions_have_the_right_unique_answer():
    scene = _scene(RED_STAR, BLUE_CIRCLE)
    asked = {}
    for seed in range(40):
        for qa in qa_pairs(scene, np.random.default_rng(seed)):
            if qa["kind"] == "relation":
                asked[qa["question"]] = qa["answer"]
    assert asked == {"What is right of the red star?": "blue circle", "What is left of the blue circle?": "red star"}


def test_answers_agree_with_the_scene_over_many_examples():
    for index in range(60):
        scene, _, row = make_example(2, "train", index)
        by_name = {o.name: o for o in scene.objects}
        for qa in row["qa"]:
            q, a = qa["question"], qa["answer"]
            if q == "How many shapes are there?":
                assert a == str(len(scene.objects))
            elif q.startswith("Where is the "):
                assert by_name[q.removeprefix("Where is the ").removesuffix("?")].region == a
            elif q.startswith("What color is the "):
                shape, _, where = q.removeprefix("What color is the ").removesuffix("?").partition(" ")
                assert any(
                    o.shape == shape and o.color == a and region_phrase(o.region) == where for o in scene.objects
                )
            elif q == "What does the sign say?":
                assert scene.sign is not None and a == scene.sign.text
            elif q == "Is there a sign?":
                assert a == ("yes" if scene.sign else "no")
            elif qa["kind"] == "relation":
                assert a in by_name
