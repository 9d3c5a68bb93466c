"""Alias structure: which main effects and two-factor interactions share a column of the design.

An effect's aliases are its products with every word of the defining relation (with I = ACE,
A = A*ACE = CE). Only those of order one and two are listed, as higher interactions are taken to be
negligible: that is the assumption a fractional design rests on.
"""

import itertools

from llmjp_jax.ablate.design import Design
from llmjp_jax.ablate.words import LETTERS, SignedWord, product, spell_signed

MAX_ORDER = 2


def alias_classes(design: Design) -> list[list[SignedWord]]:
    """Each main effect and two-factor interaction once, in a class with its low-order aliases."""
    relation = design.defining_relation()
    seen, classes = set(), []
    for effect in _low_order_effects(design.letters):
        if effect in seen:
            continue
        aliases = [product((1, effect), word) for word in relation]
        low = sorted((a for a in aliases if 1 <= len(a[1]) <= MAX_ORDER), key=_effect_order)
        seen.update(word for _, word in low)
        classes.append([(1, effect), *low])
    return classes


def _low_order_effects(letters: str) -> list[frozenset]:
    return [frozenset(c) for order in range(1, MAX_ORDER + 1) for c in itertools.combinations(letters, order)]


def _effect_order(signed: SignedWord) -> tuple:
    word = signed[1]
    return len(word), sorted(LETTERS.index(a) for a in word)


def alias_lines(design: Design) -> list[str]:
    """"A = BD = CE" for every class (a class of one is an effect clear of other low-order effects)."""
    return [" = ".join(spell_signed(member) for member in members) for members in alias_classes(design)]

