"""Text from a scene graph: captions in several phrasings, VQA pairs, and a text-to-image prompt.

Everything here is a function of the scene (plus a Generator for which questions to ask), so
the text is exactly as true as the scene. Relations are read on the 3 x 3 grid: A is "left
of" B when A's column is left of B's (rows ignored), "above" when A's row is higher; a
relation question is asked only when its answer is a single object.
"""

from __future__ import annotations

import numpy as np

from dina.data.shapes.scene import REGION_PHRASES, SHAPES, Scene, ShapeObject, region_cell

SIGN_WORD_QUESTION = "What does the sign say?"
_NUMBER = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_PLURAL = {"cross": "crosses"}


def region_phrase(region: str) -> str:
    """E.g. "in the top left", "at the bottom", "on the right"."""
    return REGION_PHRASES[region]


def plural(shape: str) -> str:
    return _PLURAL.get(shape, shape + "s")


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _sign_clause(scene: Scene) -> str:
    if scene.sign is None:
        return ""
    return f' A sign {region_phrase(scene.sign.region)} says "{scene.sign.text}".'


def captions(scene: Scene) -> list[str]:
    """Four phrasings of the same scene, from the fullest to the shortest."""
    objs = scene.objects
    full = _join([f"{_article(f'{o.size} {o.name}')} {region_phrase(o.region)}" for o in objs])
    n = len(objs)
    counted = f"There {'is' if n == 1 else 'are'} {_NUMBER[n]} shape{'s' if n > 1 else ''}: " + _join(
        [_article(o.name) for o in objs]
    )
    where = "; ".join(f"{region_phrase(o.region).capitalize()} there is {_article(f'{o.size} {o.name}')}" for o in objs)
    short = _join([o.name for o in objs])
    sign = _sign_clause(scene)
    return [
        f"{full[0].upper()}{full[1:]} on a {scene.background.kind} background.{sign}",
        f"{counted}.{sign}",
        f"{where}.{sign}",
        short + (f', and a sign that says "{scene.sign.text}"' if scene.sign is not None else ""),
    ]


def prompt(scene: Scene) -> str:
    """A text-to-image prompt naming everything the judge checks: shapes, colors, sizes, regions, sign."""
    things = _join([f"{_article(f'{o.size} {o.name}')} {region_phrase(o.region)}" for o in scene.objects])
    text = f"Draw {things} on a {scene.background.kind} gray background"
    if scene.sign is not None:
        text += f', with a sign {region_phrase(scene.sign.region)} that says "{scene.sign.text}"'
    return text + "."


def _only(objs: list[ShapeObject]) -> ShapeObject | None:
    return objs[0] if len(objs) == 1 else None


def _relation_qa(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """At most one "what is left of / right of / above / below the X?" question with a unique answer."""
    relations = {
        "left of": lambda a, b: region_cell(a.region)[1] < region_cell(b.region)[1],
        "right of": lambda a, b: region_cell(a.region)[1] > region_cell(b.region)[1],
        "above": lambda a, b: region_cell(a.region)[0] < region_cell(b.region)[0],
        "below": lambda a, b: region_cell(a.region)[0] > region_cell(b.region)[0],
    }
    candidates = []
    for ref in scene.objects:
        for word, holds in relations.items():
            answer = _only([o for o in scene.objects if o is not ref and holds(o, ref)])
            if answer is not None:
                candidates.append(
                    {"question": f"What is {word} the {ref.name}?", "answer": answer.name, "kind": "relation"}
                )
    return [candidates[int(rng.integers(len(candidates)))]] if candidates else []


def qa_pairs(scene: Scene, rng: np.random.Generator) -> list[dict]:
    """Questions with one-word or two-word answers: count, color, shape, size, position, relation, sign."""
    objs = list(scene.objects)
    asked_shape = SHAPES[int(rng.integers(len(SHAPES)))]
    n_shape = sum(o.shape == asked_shape for o in objs)
    pick = objs[int(rng.integers(len(objs)))]
    qa: list[dict] = [
        {"question": "How many shapes are there?", "answer": str(len(objs)), "kind": "count"},
        {"question": f"How many {plural(asked_shape)} are there?", "answer": str(n_shape), "kind": "count"},
        {
            "question": f"What color is the {pick.shape} {region_phrase(pick.region)}?",
            "answer": pick.color,
            "kind": "color",
        },
        {"question": f"Where is the {pick.name}?", "answer": pick.region, "kind": "position"},
        {"question": f"Is the {pick.name} small or large?", "answer": pick.size, "kind": "size"},
    ]
    same_color = [o for o in objs if o.color == pick.color]
    if len(same_color) == 1:
        qa.append({"question": f"What shape is the {pick.color} object?", "answer": pick.shape, "kind": "shape"})
    else:
        qa.append({"question": f"What shape is {region_phrase(pick.region)}?", "answer": pick.shape, "kind": "shape"})
    qa += _relation_qa(scene, rng)
    if scene.sign is not None:
        qa.append({"question": SIGN_WORD_QUESTION, "answer": scene.sign.text, "kind": "sign"})
    qa.append({"question": "Is there a sign?", "answer": "no" if scene.sign is None else "yes", "kind": "sign"})
    return qa
