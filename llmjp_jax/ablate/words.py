"""Effects as words: factor letters multiplied with A*A = I, so a product is a symmetric difference.

A word is a frozenset of letters (ABD = the interaction of A, B and D); a signed word carries +1 or
-1 (a generator may be D = -AB). Letters skip I, which names the identity as in textbooks.
"""

LETTERS = "ABCDEFGHJKLMNOPQRSTUVWXYZ"

Word = frozenset
SignedWord = tuple[int, frozenset]


def product(a: SignedWord, b: SignedWord) -> SignedWord:
    """The product of two signed words: signs multiply, letters that occur twice cancel."""
    return a[0] * b[0], a[1] ^ b[1]


def spell(word: frozenset) -> str:
    """Letters in alphabet order ("I" for the empty word, the identity)."""
    return "".join(sorted(word, key=LETTERS.index)) or "I"


def spell_signed(signed: SignedWord) -> str:
    return ("-" if signed[0] < 0 else "") + spell(signed[1])


def parse_word(text: str) -> frozenset:
    """"ABC" -> {A, B, C}; letters must be distinct (AAB would hide that A cancels)."""
    letters = frozenset(text)
    if len(letters) != len(text):
        raise ValueError(f"{text!r} repeats a letter")
    return letters
