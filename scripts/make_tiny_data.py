#!/usr/bin/env python3
"""Writes the small synthetic task data of configs/tiny-*.yaml.

Deterministic (fixed seeds), standard library only. The texts are short
English phrases built from word lists, so a tiny frozen model (the shared
aidreams260K, trained on poetic English) can read them:

  configs/data/tiny-ti/   task-incremental: three tasks
    nature    topic: nature words vs machine words     (label words: light / data)
    mood      mood of the same kind of phrases         (label words: good / bad)
    count     numbers: small (one..four) vs large (six..nine) (label words: few / many)
  configs/data/tiny-di/   domain-incremental: one label space (good / bad),
    three domains with their own vocabularies: garden, machine, ocean

Run from the repository root: python3 scripts/make_tiny_data.py
"""
import json
import os
import random

NATURE = ["moon", "river", "flower", "dawn", "sky", "rain", "forest", "petals", "breeze",
          "stars", "garden", "leaves", "ocean", "sun", "meadow", "clouds"]
MACHINE = ["data", "node", "vector", "code", "signal", "circuit", "network", "matrix",
           "pixel", "server", "model", "tensor", "layer", "memory", "logic", "kernel"]
OCEAN = ["waves", "shore", "tide", "sea", "shell", "sand", "coral", "harbor", "foam",
         "reef", "gulls", "current"]
GOOD = ["gentle", "bright", "warm", "calm", "lovely", "kind", "golden", "happy", "soft", "clear"]
BAD = ["broken", "cold", "dark", "harsh", "bitter", "grim", "cruel", "dull", "sad", "ugly"]
VERBS = ["glows", "sings", "drifts", "hums", "rests", "moves", "waits", "turns", "shines", "falls"]
SMALL = ["one", "two", "three", "four"]
LARGE = ["six", "seven", "eight", "nine"]


def phrase(rng, nouns, adjectives):
    # The adjectives come last, right before the question the template adds:
    # a tiny frozen model carries the nearest words to the answer best.
    a, b = rng.sample(nouns, 2)
    c, d = rng.sample(adjectives, 2)
    return f"the {a} {rng.choice(VERBS)} near the {b}, {c} and {d}"


def write(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def balanced(rng, n, make):
    rows = [make(rng, i % 2) for i in range(n)]
    rng.shuffle(rows)
    return rows


def task_nature(rng, label):
    # The topic words come last here, the mood words first.
    nouns = NATURE if label == 1 else MACHINE
    a, b = rng.sample(nouns, 2)
    return {"text": f"the {rng.choice(GOOD + BAD)} one {rng.choice(VERBS)} near the {a} and the {b}",
            "label": label}


def task_mood(rng, label):
    adjectives = GOOD if label == 1 else BAD
    return {"text": phrase(rng, NATURE + MACHINE, adjectives), "label": label}


def task_count(rng, label):
    words = LARGE if label == 1 else SMALL
    n = rng.randint(2, 4)
    return {"text": " ".join(rng.choice(words) for _ in range(n)) + " " +
            rng.choice(["birds", "lights", "songs", "seeds"]), "label": label}


def domain(nouns):
    def make(rng, label):
        adjectives = GOOD if label == 1 else BAD
        return {"text": phrase(rng, nouns, adjectives), "label": label}
    return make


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs", "data")
    for name, make, seed in [("nature", task_nature, 1), ("mood", task_mood, 2),
                             ("count", task_count, 3)]:
        rng = random.Random(seed)
        write(os.path.join(root, "tiny-ti", name, "train.jsonl"), balanced(rng, 800, make))
        write(os.path.join(root, "tiny-ti", name, "test.jsonl"), balanced(rng, 800, make))
    for name, nouns, seed in [("garden", NATURE, 11), ("machine", MACHINE, 12), ("ocean", OCEAN, 13)]:
        rng = random.Random(seed)
        write(os.path.join(root, "tiny-di", name, "train.jsonl"), balanced(rng, 800, domain(nouns)))
        write(os.path.join(root, "tiny-di", name, "test.jsonl"), balanced(rng, 800, domain(nouns)))


if __name__ == "__main__":
    main()
