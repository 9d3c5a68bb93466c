"""Two-level fractional factorial designs 2^(k-p): k factors in 2^(k-p) runs.

The first k-p factors (base factors) run through the full factorial in standard order (A changes
every run, B every two, ...); each of the other p factors takes the column of an interaction of
base factors, its generator (E=AC: E is set to the product of A's and C's levels). The generators
fix the defining relation (every product of the words I = ACE, ...), and its shortest word the
resolution: III keeps main effects apart from each other, IV also from two-factor interactions,
V keeps two-factor interactions apart from each other.
"""

import dataclasses
import itertools
import math
import re
from functools import reduce

import numpy as np

from llmjp_jax.ablate.errors import DesignError
from llmjp_jax.ablate.words import LETTERS, SignedWord, parse_word, product, spell, spell_signed

# Maximum-resolution (minimum-aberration) generators as tabulated in textbooks (Montgomery, Design and
# Analysis of Experiments, table 8.14; Box, Hunter & Hunter), keyed by (factors, runs).
DEFAULT_GENERATORS = {
    (3, 4): "C=AB",
    (4, 8): "D=ABC",
    (5, 8): "D=AB,E=AC",
    (5, 16): "E=ABCD",
    (6, 8): "D=AB,E=AC,F=BC",
    (6, 16): "E=ABC,F=BCD",
    (6, 32): "F=ABCDE",
    (7, 8): "D=AB,E=AC,F=BC,G=ABC",
    (7, 16): "E=ABC,F=BCD,G=ACD",
    (7, 32): "F=ABCD,G=ABDE",
    (7, 64): "G=ABCDEF",
    (8, 16): "E=BCD,F=ACD,G=ABC,H=ABD",
    (8, 32): "F=ABC,G=ABD,H=BCDE",
    (8, 64): "G=ABCD,H=ABEF",
}
SEARCH_LIMIT = 20_000  # generator sets tried for a (factors, runs) the table lacks
MIN_RESOLUTION = 3  # below III two main effects share one column and cannot be told apart
_GENERATOR = re.compile(r"^([A-Z])=(-?)([A-Z]+)$")


@dataclasses.dataclass(frozen=True)
class Generator:
    """`letter` = `word`: the generated factor takes the column of a signed interaction."""

    letter: str
    word: SignedWord

    def __str__(self) -> str:
        return f"{self.letter}={spell_signed(self.word)}"

    @property
    def defining_word(self) -> SignedWord:
        """letter = word multiplied by letter: I = letter * word."""
        return product(self.word, (1, frozenset(self.letter)))


@dataclasses.dataclass(frozen=True)
class Design:
    factors: int
    runs: int
    generators: tuple[Generator, ...]

    @property
    def letters(self) -> str:
        return LETTERS[:self.factors]

    @property
    def base_letters(self) -> str:
        return LETTERS[:self.factors - len(self.generators)]

    def defining_relation(self) -> list[SignedWord]:
        """Every word equal to I: the products of each non-empty set of generator words."""
        words = [g.defining_word for g in self.generators]
        return [reduce(product, chosen) for size in range(1, len(words) + 1)
                for chosen in itertools.combinations(words, size)]

    def word_length_pattern(self) -> tuple[int, ...]:
        """How many defining words have 1, 2, ..., k letters (minimum aberration minimises it in order)."""
        lengths = [len(word) for _, word in self.defining_relation()]
        return tuple(lengths.count(n) for n in range(1, self.factors + 1))

    @property
    def resolution(self) -> int | None:
        """The shortest defining word's length; None for a full factorial (no word equals I)."""
        relation = self.defining_relation()
        return min(len(word) for _, word in relation) if relation else None

    def matrix(self) -> np.ndarray:
        """runs x factors of -1 / +1 (low / high), base factors in standard order."""
        rows = np.arange(self.runs)[:, None]
        base = np.where((rows >> np.arange(len(self.base_letters))) & 1, 1, -1)
        columns = dict(zip(self.base_letters, base.T))
        for g in self.generators:
            sign, word = g.word
            columns[g.letter] = sign * np.prod([columns[a] for a in sorted(word)], axis=0)
        return np.stack([columns[a] for a in self.letters], axis=1).astype(int)


def make_design(factors: int, runs: int, generators: str | None = None) -> Design:
    """The design of `factors` factors in `runs` runs: the given generators, else the defaults."""
    base = _base_count(factors, runs)
    if generators:
        design = Design(factors, runs, parse_generators(generators, factors, base))
    else:
        design = default_design(factors, runs)
    _check_resolution(design)
    return design


def _base_count(factors: int, runs: int) -> int:
    if not 1 <= factors <= len(LETTERS):
        raise DesignError(f"{factors} factors: a design takes 1 to {len(LETTERS)} factors.")
    if runs < 2 or runs & (runs - 1):
        raise DesignError(f"--runs={runs} is not a power of two (4, 8, 16, 32, ...).")
    if runs <= factors:
        raise DesignError(f"--runs={runs} is too few for {factors} factors: a two-level design needs more "
                          f"runs than factors (at least {1 << factors.bit_length()}).")
    if runs > 1 << factors:
        raise DesignError(f"--runs={runs} is more than the full factorial of {factors} factors "
                          f"(2^{factors} = {1 << factors} runs).")
    return runs.bit_length() - 1


def parse_generators(text: str, factors: int, base: int) -> tuple[Generator, ...]:
    """"D=AB,E=-AC" -> generators, one for each factor after the `base` base factors, in order."""
    wanted = LETTERS[base:factors]
    parsed = {}
    for item in (part for part in text.replace(" ", "").upper().split(",") if part):
        g = _parse_generator(item, factors, base)
        if g.letter in parsed:
            raise DesignError(f"--generators gives {g.letter} twice.")
        parsed[g.letter] = g
    if set(parsed) != set(wanted):
        raise DesignError(f"--generators must define exactly {', '.join(wanted) or 'nothing'} ({factors} "
                          f"factors in {1 << base} runs: {LETTERS[:base]} form the full factorial); "
                          f"it defines {', '.join(parsed) or 'nothing'}.")
    return tuple(parsed[letter] for letter in wanted)


def _parse_generator(item: str, factors: int, base: int) -> Generator:
    match = _GENERATOR.match(item)
    if not match:
        raise DesignError(f"--generators: {item!r} is not of the form D=AB (a factor letter = a product "
                          "of base factor letters, optionally negated: D=-AB).")
    letter, minus, letters = match.groups()
    unknown = sorted(set(letter + letters) - set(LETTERS[:factors]))
    if unknown:
        raise DesignError(f"--generators: {item!r} names unknown factor {', '.join(unknown)} (the "
                          f"{factors} factors are {LETTERS[:factors]}).")
    try:
        word = parse_word(letters)
    except ValueError as e:
        raise DesignError(f"--generators: {item!r}: {e}.") from None
    if not word <= set(LETTERS[:base]):
        raise DesignError(f"--generators: {item!r} must be a product of the base factors "
                          f"{LETTERS[:base]} only.")
    if len(word) < 2:
        raise DesignError(f"--generators: {item!r} gives {letter} the same column as {letters} "
                          "(resolution II): use an interaction of two or more base factors.")
    return Generator(letter, (-1 if minus else 1, word))


def default_design(factors: int, runs: int) -> Design:
    """The tabulated generators, else the minimum-aberration set found by searching all of them."""
    base = _base_count(factors, runs)
    if base == factors:
        return Design(factors, runs, ())
    if (factors, runs) in DEFAULT_GENERATORS:
        return Design(factors, runs, parse_generators(DEFAULT_GENERATORS[factors, runs], factors, base))
    found = search_design(factors, runs)
    if found is None:
        raise DesignError(f"No tabulated generators for {factors} factors in {runs} runs and too many "
                          "sets to search: give them with --generators (e.g. from a textbook table).")
    return found


def search_design(factors: int, runs: int) -> Design | None:
    """The minimum-aberration design over every set of distinct generator words (None: too many)."""
    base = runs.bit_length() - 1
    letters = LETTERS[:base]
    candidates = [frozenset(c) for size in range(base, 1, -1) for c in itertools.combinations(letters, size)]
    added = factors - base
    if added > len(candidates) or math.comb(len(candidates), added) > SEARCH_LIMIT:
        return None
    designs = (Design(factors, runs, tuple(Generator(LETTERS[base + i], (1, word)) for i, word in
                                           enumerate(chosen)))
               for chosen in itertools.combinations(candidates, added))
    return min(designs, key=Design.word_length_pattern)


def _check_resolution(design: Design):
    relation = design.defining_relation()
    short = [spell(word) for _, word in relation if len(word) < MIN_RESOLUTION]
    if short:
        raise DesignError(f"--generators {','.join(map(str, design.generators))} make main effects "
                          f"share a column (defining word {', '.join(short)}: resolution "
                          f"{roman(design.resolution)}); choose generators with distinct words.")


def roman(n: int | None) -> str:
    """Resolution in textbook numerals ("full" for a full factorial)."""
    if n is None:
        return "full"
    numerals = ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"))
    out = ""
    for value, symbol in numerals:
        while n >= value:
            out, n = out + symbol, n - value
    return out
