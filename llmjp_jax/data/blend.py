"""Megatron blend lists (`WEIGHT PREFIX` pairs, as LLM-jp's train_data.sh files write them) -> a mixture.

Accepted forms, mixed freely, with `#` comments and `\\` line continuations:

  TRAIN_DATA_PATH=(                              # a bash array, as LLM-jp-4's train_data.sh
      --data-path                                # (ignored, as Megatron's own flag)
      14486363187 ${DATASET_DIR}/code/stack_0000_text_document
      $(calc 8 5139896520 ${DATASET_DIR}/en_dolma-books_0000_text_document)   # repeats x tokens
  )
  TRAIN_DATA_PATH="${TRAIN_DATA_PATH} 2563804308 ${DATASET_DIR}/ja/wiki_0000.jsonl_text_document"
  14486363187 /data/code/stack_0000_text_document   # a plain list (when the file has no TRAIN_DATA_PATH)

`NAME=value` lines define variables for `${NAME}`/`$NAME`; other shell lines are ignored once the
file sets TRAIN_DATA_PATH. `$(calc R T P)` is LLM-jp's helper: weight R x T for P (left out when 0).
A list of prefixes without weights gives each its own tokens (repeats 1), as Megatron does.

LLM-jp weights are token counts x repeats, so repeats = weight / tokens (the tokens from each
`.idx`) and a subset's share is weight / sum of weights, the proportion Megatron samples.
"""

import dataclasses
import os
import re
import shlex

from llmjp_jax.data.megatron import MegatronDataset
from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.log import get_logger

log = get_logger()
VARIABLE = "TRAIN_DATA_PATH"
ASSIGNMENT = re.compile(r"^(?:export\s+)?([A-Za-z_]\w*)=(.*)$")
CALC = re.compile(r"\$\(\s*calc\s+(\S+)\s+(\S+)\s+(\S+?)\s*\)")
REFERENCE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
COMMENT = re.compile(r"(^|\s)#.*$")
FEW_REPEATS = 1e-3  # below this, the weights are likely proportions, not token counts


class BlendError(UserError):
    """A blend list that cannot be read; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class BlendEntry:
    name: str
    prefix: str
    weight: float
    tokens: int
    documents: int

    @property
    def repeats(self) -> float:
        return self.weight / self.tokens


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each line once `\\` continuations are joined and comments cut."""
    lines, pending, first = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        first = first or number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append((first, COMMENT.sub("", pending + line).strip()))
        pending, first = "", 0
    if pending:
        lines.append((first, COMMENT.sub("", pending).strip()))
    return [(n, line) for n, line in lines if line]


class _Unusable(str):
    """A variable whose value could not be worked out (a command substitution, say): an error if used."""


def _expand(text: str, variables: dict, where: str) -> str:
    """`text` with its variables substituted (the file's, else the environment's), then its calc()s."""
    def value(match):
        name = match.group(1) or match.group(2)
        found = variables.get(name, os.environ.get(name))
        if found is None or isinstance(found, _Unusable):
            raise BlendError(f"{where}: ${name} is not set in the file{found or ''}.")
        return found

    def calc(match):  # LLM-jp's helper leaves out an entry whose product is 0
        weight = _number(match.group(1), where) * _number(match.group(2), where)
        return f"{weight:.17g} {match.group(3)}" if weight else ""

    return CALC.sub(calc, REFERENCE.sub(value, text))


def _define(variables: dict, name: str, value: str, where: str):
    try:
        variables[name] = " ".join(_words(_expand(value, variables, where), where))
    except BlendError as e:
        variables[name] = _Unusable(f" in a form this reader follows ({e})")


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BlendError(f"{where}: {text!r} is not a number.") from None


def _words(text: str, where: str) -> list[str]:
    try:
        return [w for w in shlex.split(text) if w != "--data-path"]
    except ValueError as e:
        raise BlendError(f"{where}: {e}") from None


def parse_words(path: str) -> list[tuple[str, str]]:
    """The blend's words (weights and prefixes, variables expanded), each with its file:line."""
    with open(path, encoding="utf-8") as f:
        lines = _logical_lines(f.read())
    plain = not any((m := ASSIGNMENT.match(line)) and m.group(1) == VARIABLE for _, line in lines)
    variables, words, in_array = {}, [], False
    for number, line in lines:
        where = f"{path}:{number}"
        assignment = None if in_array else ASSIGNMENT.match(line)
        if assignment and assignment.group(1) != VARIABLE:
            _define(variables, assignment.group(1), assignment.group(2), where)
            continue
        if assignment:
            line, in_array = _own_value(assignment.group(2), words)
        elif not (in_array or plain):
            continue
        line = _expand(line, variables, where)
        if in_array and ")" in line:
            line, in_array = line[:line.index(")")], False
        words += [(w, where) for w in _words(line, where)]
    return words


def _own_value(value: str, words: list) -> tuple[str, bool]:
    """What `TRAIN_DATA_PATH=value` adds: an array's first line, an append's words, or a reset."""
    if value.startswith("("):
        words.clear()
        return value[1:], True
    for self_reference in (f"${{{VARIABLE}}}", f"${VARIABLE}"):
        if value.strip("\"'").startswith(self_reference):
            return value.strip("\"'")[len(self_reference):], False
    words.clear()
    return value.strip("\"'"), False


def _pairs(words: list[tuple[str, str]], path: str) -> list[tuple[float | None, str]]:
    """(weight, prefix) pairs: alternating weight and prefix, or prefixes alone (weight None)."""
    if not words:
        raise BlendError(f"{path} lists no dataset.")
    numeric = [_is_number(w) for w, _ in words]
    if not any(numeric):
        return [(None, w) for w, _ in words]
    if len(words) % 2 or not all(numeric[0::2]) or any(numeric[1::2]):
        bad = next((i for i, n in enumerate(numeric) if n != (i % 2 == 0)), len(words) - 1)
        raise BlendError(f"{words[bad][1]}: expected WEIGHT PREFIX pairs, found {words[bad][0]!r} "
                         f"where a {'weight' if bad % 2 == 0 else 'prefix'} belongs.")
    return [(float(words[i][0]), words[i + 1][0]) for i in range(0, len(words), 2)]


def _is_number(word: str) -> bool:
    try:
        float(word)
        return True
    except ValueError:
        return False


def subset_names(prefixes: list[str]) -> list[str]:
    """Short unique names: the file name without `_text_document`/`.jsonl`, its folder added on a clash."""
    def clean(text: str) -> str:
        return re.sub(r"\W", "_", text.replace("_text_document", "").replace(".jsonl", "")).strip("_")
    names = [clean(os.path.basename(p)) for p in prefixes]
    names = [f"{clean(os.path.basename(os.path.dirname(p)))}_{n}" if names.count(n) > 1 else n
             for p, n in zip(prefixes, names)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def read_blend(path: str, vocab_size: int | None = None) -> list[BlendEntry]:
    """The blend list at `path` as entries with their tokens from the `.idx` files; a prefix listed
    twice is one entry with the weights summed. `vocab_size` checks each dataset's dtype against it."""
    if not os.path.isfile(path):
        raise MissingFileError(f"Blend list {path} does not exist.")
    merged: dict[str, float | None] = {}
    for weight, prefix in _pairs(parse_words(path), path):
        if prefix in merged:
            log.warning("%s lists %s twice: its weights are added.", path, prefix)
            weight = None if weight is None else weight + merged[prefix]
        merged[prefix] = weight
    entries = []
    for name, (prefix, weight) in zip(subset_names(list(merged)), merged.items()):
        ds = MegatronDataset(prefix)
        if vocab_size is not None:
            ds.check_vocab(vocab_size, scan=False)
        tokens = ds.num_tokens
        if tokens == 0 or (weight is not None and not weight > 0):
            raise BlendError(f"{path}: {prefix} has {tokens} tokens and weight {weight}; both must be "
                             "positive.")
        weight = tokens if weight is None else weight
        entries.append(BlendEntry(name, prefix, weight, tokens, ds.num_documents))
    few = [e.name for e in entries if e.repeats < FEW_REPEATS]
    if few:
        log.warning("Repeats below %g for %s: LLM-jp's weights are tokens x repeats; weights that are "
                    "proportions give tiny repeats (scale them to token counts).", FEW_REPEATS,
                    ", ".join(few))
    return entries


def shares(entries: list[BlendEntry]) -> list[float]:
    total = sum(e.weight for e in entries)
    return [e.weight / total for e in entries]


def blend_table(entries: list[BlendEntry]) -> str:
    """The mixture table: tokens, weight (= tokens x repeats), repeats and share of each subset."""
    lines = [f"{'subset':<32} {'tokens':>17} {'repeats':>10} {'x repeats':>19} {'share':>8}"]
    for e, share in zip(entries, shares(entries)):
        lines.append(f"{e.name:<32} {e.tokens:>17,} {e.repeats:>10.4f} {round(e.weight):>19,} "
                     f"{100 * share:>7.3f}%")
    tokens, total = sum(e.tokens for e in entries), sum(e.weight for e in entries)
    lines.append(f"{'total':<32} {tokens:>17,} {'':>10} {round(total):>19,} {100:>7.3f}%")
    return "\n".join(lines)


def mixture_config(entries: list[BlendEntry], level: str = "L1", tokenizer: str | None = None) -> dict:
    """`data.mixture` entries: each subset's Megatron prefix, repeats, release level and tokenizer."""
    extra = {"tokenizer": os.path.abspath(tokenizer)} if tokenizer else {}
    return {e.name: {"megatron": os.path.abspath(e.prefix), "repeats": e.repeats, "level": level, **extra}
            for e in entries}


def config_source(entries: list[BlendEntry], source: str, level: str = "L1",
                  tokenizer: str | None = None) -> str:
    """A Python module defining MIXTURE (for `c.data.mixture = MIXTURE` in a preset), with the table."""
    table = "\n".join(f"# {line}" for line in blend_table(entries).splitlines())
    mixture = mixture_config(entries, level, tokenizer)
    body = "\n".join(f"    {name!r}: {spec!r}," for name, spec in mixture.items())
    return (f'"""data.mixture from the Megatron blend list {source} (llmjp-convert megatron-blend)."""\n\n'
            f"{table}\n\nMIXTURE = {{\n{body}\n}}\n")
