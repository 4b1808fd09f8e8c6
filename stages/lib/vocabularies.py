"""Long-tail class vocabularies of the K-class 3D protocol (SAS Sec. 4.2, Table 2: K = 40 / 80 / 160 after OpenScene).

The paper evaluates on Matterport3D's K most common categories of the NYU label set. Our reading, for scenes whose
ground truth uses ScanNet / NYU40 names: K = 40 is the NYU40 class list (NYU40 id order; its three catch-all classes
written as words: "other structure", "other furniture", "other prop"); K = 80 and K = 160 extend it by the next
40 / 120 ScanNet200 category names in ScanNet200's class-list order (its raw label ids, which ScanNet numbers by
decreasing frequency), skipping names already in NYU40 and ``NYU40_SYNONYMS`` (ScanNet200 names of an NYU40 class,
e.g. "couch" for "sofa"), so no two vocabulary entries name the same thing. The vocabularies are nested: the first
K entries of ``LONG_TAIL[160]`` are ``LONG_TAIL[K]``.

The K-class vocabulary is the set of candidate labels each point is classified over (argmax over the K text
features); mIoU / mAcc average over the vocabulary classes present in the scene's ground truth (OpenScene's
evaluation skips classes without a GT point). Scene categories map to vocabulary entries by name, through
``SCENE_ALIASES`` where a reader spells a class differently; GT points of a category outside the vocabulary are
ignored.
"""

from __future__ import annotations

import numpy as np

NYU40 = ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
         "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
         "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
         "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "other structure", "other furniture",
         "other prop"]

# The ScanNet200 benchmark's class list (BenchmarkScripts/ScanNet200/scannet200_constants.py, CLASS_LABELS_200).
SCANNET200 = [
    "wall", "chair", "floor", "table", "door", "couch", "cabinet", "shelf", "desk", "office chair", "bed", "pillow",
    "sink", "picture", "window", "toilet", "bookshelf", "monitor", "curtain", "book", "armchair", "coffee table", "box",
    "refrigerator", "lamp", "kitchen cabinet", "towel", "clothes", "tv", "nightstand", "counter", "dresser", "stool",
    "cushion", "plant", "ceiling", "bathtub", "end table", "dining table", "keyboard", "bag", "backpack",
    "toilet paper", "printer", "tv stand", "whiteboard", "blanket", "shower curtain", "trash can", "closet", "stairs",
    "microwave", "stove", "shoe", "computer tower", "bottle", "bin", "ottoman", "bench", "board", "washing machine",
    "mirror", "copier", "basket", "sofa chair", "file cabinet", "fan", "laptop", "shower", "paper", "person",
    "paper towel dispenser", "oven", "blinds", "rack", "plate", "blackboard", "piano", "suitcase", "rail", "radiator",
    "recycling bin", "container", "wardrobe", "soap dispenser", "telephone", "bucket", "clock", "stand", "light",
    "laundry basket", "pipe", "clothes dryer", "guitar", "toilet paper holder", "seat", "speaker", "column", "bicycle",
    "ladder", "bathroom stall", "shower wall", "cup", "jacket", "storage bin", "coffee maker", "dishwasher",
    "paper towel roll", "machine", "mat", "windowsill", "bar", "toaster", "bulletin board", "ironing board",
    "fireplace", "soap dish", "kitchen counter", "doorframe", "toilet paper dispenser", "mini fridge",
    "fire extinguisher", "ball", "hat", "shower curtain rod", "water cooler", "paper cutter", "tray", "shower door",
    "pillar", "ledge", "toaster oven", "mouse", "toilet seat cover dispenser", "furniture", "cart",
    "storage container", "scale", "tissue box", "light switch", "crate", "power outlet", "decoration", "sign",
    "projector", "closet door", "vacuum cleaner", "candle", "plunger", "stuffed animal", "headphones", "dish rack",
    "broom", "guitar case", "range hood", "dustpan", "hair dryer", "water bottle", "handicap bar", "purse", "vent",
    "shower floor", "water pitcher", "mailbox", "bowl", "paper bag", "alarm clock", "music stand", "projector screen",
    "divider", "laundry detergent", "bathroom counter", "object", "bathroom vanity", "closet wall", "laundry hamper",
    "bathroom stall door", "ceiling light", "trash bin", "dumbbell", "stair rail", "tube", "bathroom cabinet",
    "cd case", "closet rod", "coffee kettle", "structure", "shower head", "keyboard piano", "case of water bottles",
    "coat rack", "storage organizer", "folded chair", "fire alarm", "power strip", "calendar", "poster",
    "potted plant", "luggage", "mattress"]

# ScanNet200 names of an NYU40 class (left out of the extension).
NYU40_SYNONYMS = {"couch": "sofa", "shelf": "shelves", "book": "books", "tv": "television",
                  "nightstand": "night stand", "mat": "floor mat", "structure": "other structure",
                  "furniture": "other furniture", "object": "other prop"}

# Scene category names that differ from their vocabulary entry: ScanNet's nyu40class spellings.
SCENE_ALIASES = {"refridgerator": "refrigerator", "otherstructure": "other structure",
                 "otherfurniture": "other furniture", "otherprop": "other prop"}

LONG_TAIL_SIZES = (40, 80, 160)
EXTENSION = [n for n in SCANNET200 if n not in NYU40 and n not in NYU40_SYNONYMS]
LONG_TAIL: dict[int, list[str]] = {k: NYU40 + EXTENSION[:k - len(NYU40)] for k in LONG_TAIL_SIZES}
LONG_TAIL_NAMES = LONG_TAIL[max(LONG_TAIL_SIZES)]  # the largest vocabulary; every smaller one is a prefix


def vocabulary_name(category: str) -> str:
    """The vocabulary spelling of a scene category name."""
    return SCENE_ALIASES.get(category, category)


def category_lut(categories: list[str], vocabulary: list[str]) -> np.ndarray:
    """[C+1] vocabulary index of every scene category (-1: not in the vocabulary); the last entry, for label -1, is
    -1. Index with ``np.where(labels < 0, C, labels)``."""
    names = [vocabulary_name(c) for c in categories]
    return np.array([vocabulary.index(n) if n in vocabulary else -1 for n in names] + [-1], np.int64)


def unmapped(categories: list[str], vocabulary: list[str]) -> list[str]:
    """The scene categories without a vocabulary entry (their GT points are ignored)."""
    return [c for c in categories if vocabulary_name(c) not in vocabulary]
