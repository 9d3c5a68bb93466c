"""A factor is one change to the training mixture, tried at a low and a high level.

Each level sets the repeats of one or more subsets of the preset's `data.mixture` (repeats 0: the
subset is left out of that run). A factor, in a --factors file (JSON, or a .py file defining
FACTORS) or as a --factor flag:

  {"name": "megamath"}                          in / out: repeats 0 / the preset's (or "repeats": 2)
  {"name": "fineweb", "low": 0.5, "high": 1}    a repeat count at two levels ("subset" if not the name)
  {"name": "stack_v2", "low": {"stack_v1": 1, "stack_v2": 0}, "high": {"stack_v1": 0, "stack_v2": 1}}
  --factor=megamath   --factor=megamath=2   --factor=fineweb=0.5,1
"""

import dataclasses
import importlib.util
import json
import math
import os
import re

from llmjp_jax.ablate.errors import FactorError

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_SUBSET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a config key: --config.data.mixture.<subset>
_KEYS = {"name", "subset", "repeats", "low", "high"}


@dataclasses.dataclass(frozen=True)
class Factor:
    name: str
    low: dict[str, float]
    high: dict[str, float]

    def repeats(self, level: int) -> dict[str, float]:
        """subset -> repeats at level -1 (low) or +1 (high)."""
        return self.high if level > 0 else self.low

    @property
    def subsets(self) -> list[str]:
        return sorted(self.low)

    def to_json(self) -> dict:
        return {"name": self.name, "low": self.low, "high": self.high}


def make_factors(specs: list, source: str, mixture: dict[str, float]) -> list[Factor]:
    """Factors from their specs, checked against the preset's mixture (subset -> repeats)."""
    if not isinstance(specs, list) or not specs:
        raise FactorError(f"{source}: give a non-empty list of factors.")
    factors = [make_factor(spec, source, mixture) for spec in specs]
    _check_distinct(factors, source)
    return factors


def make_factor(spec, source: str, mixture: dict[str, float]) -> Factor:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not _NAME.match(spec["name"]):
        raise FactorError(f"{source}: {spec!r} is not a factor: it needs a \"name\" of letters, digits, "
                          "'_', '-' or '.'.")
    name = spec["name"]
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise FactorError(f"{source}: factor {name!r} has unknown key(s) {', '.join(unknown)} "
                          f"(a factor has {', '.join(sorted(_KEYS))}).")
    low, high = _levels(spec, source, mixture)
    where = f"{source}: factor {name!r}"
    for subset in low:
        _check_subset(subset, where, mixture)
        for value in (low[subset], high[subset]):
            _check_repeats(value, f"{where}, subset {subset!r}")
    if low == high:
        raise FactorError(f"{where} is the same at both levels: nothing would change.")
    return Factor(name, low, high)


def _levels(spec: dict, source: str, mixture: dict[str, float]) -> tuple[dict, dict]:
    name, low, high = spec["name"], spec.get("low"), spec.get("high")
    if isinstance(low, dict) or isinstance(high, dict):
        if not (isinstance(low, dict) and isinstance(high, dict)) or set(low) != set(high) or not low:
            raise FactorError(f"{source}: factor {name!r}: \"low\" and \"high\" must both map the same "
                              "subsets to repeats.")
        if "subset" in spec or "repeats" in spec:
            raise FactorError(f"{source}: factor {name!r}: \"subset\"/\"repeats\" go with number levels, "
                              "not with subset maps.")
        return dict(low), dict(high)
    subset = spec.get("subset", name)
    if (low is None) != (high is None):
        raise FactorError(f"{source}: factor {name!r}: give both \"low\" and \"high\", or neither (in/out).")
    if low is None:
        if "repeats" in spec:
            return {subset: 0.0}, {subset: spec["repeats"]}
        return {subset: 0.0}, {subset: mixture.get(subset, 1.0)}
    if "repeats" in spec:
        raise FactorError(f"{source}: factor {name!r}: \"repeats\" is for an in/out factor; it has levels.")
    return {subset: low}, {subset: high}


def _check_subset(subset, where: str, mixture: dict[str, float]):
    if not isinstance(subset, str) or not _SUBSET.match(subset):
        raise FactorError(f"{where}: subset {subset!r} is not a data.mixture key (letters, digits, '_').")
    if subset not in mixture:
        raise FactorError(f"{where}: unknown subset {subset!r}: the preset's data.mixture has "
                          f"{', '.join(sorted(mixture))} (--config).")


def _check_repeats(value, where: str):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:
        raise FactorError(f"{where}: repeats {value!r} must be a number >= 0 (0 leaves the subset out).")


def _check_distinct(factors: list[Factor], source: str):
    names, owners = set(), {}
    for f in factors:
        if f.name in names:
            raise FactorError(f"{source}: two factors are named {f.name!r}.")
        names.add(f.name)
        for subset in f.subsets:
            if subset in owners:
                raise FactorError(f"{source}: factors {owners[subset]!r} and {f.name!r} both set the "
                                  f"repeats of {subset!r}; a subset belongs to one factor.")
            owners[subset] = f.name


def parse_factor_flag(text: str) -> dict:
    """--factor: "NAME" (in/out), "NAME=R" (in/out at repeats R) or "NAME=LOW,HIGH" (two repeats)."""
    name, _, levels = text.partition("=")
    values = [v.strip() for v in levels.split(",")] if levels else []
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        numbers = None
    if numbers is None or len(numbers) > 2 or not name.strip():
        raise FactorError(f"--factor={text}: write NAME, NAME=REPEATS or NAME=LOW,HIGH (e.g. ja=1,4).")
    spec = {"name": name.strip()}
    if len(numbers) == 1:
        spec["repeats"] = numbers[0]
    elif len(numbers) == 2:
        spec["low"], spec["high"] = numbers
    return spec


def load_factor_file(path: str) -> list:
    """The factor specs of a .json file (a list, or {"factors": [...]}) or a .py file (FACTORS)."""
    if not os.path.isfile(path):
        raise FactorError(f"--factors={path} does not exist.")
    if path.endswith(".py"):
        specs = getattr(_load_module(path), "FACTORS", None)
        if specs is None:
            raise FactorError(f"--factors={path} defines no FACTORS list.")
        return specs
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FactorError(f"--factors={path} is not JSON ({e}).") from None
    return data.get("factors") if isinstance(data, dict) else data


def load_preset_mixture(path: str) -> dict[str, float]:
    """subset -> repeats of the preset file's data.mixture (the runs change these)."""
    if not os.path.isfile(path):
        raise FactorError(f"--config={path} does not exist.")
    module = _load_module(path)
    if not hasattr(module, "get_config"):
        raise FactorError(f"--config={path} has no get_config(): name a preset file (configs/...py).")
    mixture = module.get_config().get("data", {}).get("mixture") or {}
    if not mixture:
        raise FactorError(f"--config={path} has no data.mixture: the factors change a mixture's subsets.")
    return {name: float(spec.get("repeats", 1.0)) for name, spec in dict(mixture).items()}


def _load_module(path: str):
    spec = importlib.util.spec_from_file_location(f"_llmjp_ablate_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
