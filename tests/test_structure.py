"""The package's shape: small modules, imports that flow one way, commands that explain themselves."""

import ast
import os
import subprocess
import sys

import pytest

from .conftest import ROOT

PACKAGE = os.path.join(ROOT, "llmjp_jax")
MAX_LINES = 400


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def _imports(path: str, modules: dict[str, str]) -> set[str]:
    """The package modules that `path` imports anywhere in it (function-level imports included)."""
    targets = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("llmjp_jax."):
                targets.add(name)
    return targets


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `graph`, as the modules along it; None if there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_is_over_400_lines():
    long = {path: n for path in _modules().values()
            if (n := sum(1 for _ in open(path, encoding="utf-8"))) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycle():
    """Imports flow one way inside every package too (within llmjp_jax.data: readers -> shards ->
    manifest -> tokenize / loader). A package's own __init__ is left out of the edges into it
    (Python loads it first anyway)."""
    modules = _modules()
    graph = {name: {t for t in _imports(path, modules) if not name.startswith(t + ".") and t != name}
             for name, path in modules.items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


COMMANDS = {  # module -> flags it must list in --help
    "llmjp_jax.cli.train": ["--config", "--workdir", "--dry_run", "--target"],
    "llmjp_jax.cli.tokenize": ["--input", "--output_dir", "--tokenizer", "--on_bad_input"],
    "llmjp_jax.cli.spm_train": ["--input"],
    "llmjp_jax.cli.convert": ["--workdir", "--output", "--hf_dir"],
    "llmjp_jax.cli.generate": ["--workdir"],
    "llmjp_jax.cli.plot": ["--output", "--x"],
    "llmjp_jax.cli.plan": ["--config", "--hardware", "--nodes", "--check"],
    "llmjp_jax.cli.ablate": ["--factors", "--runs", "--generators", "--plan", "--metric"],
    "llmjp_jax.cli.eval": ["--workdir", "--task", "--step", "--tokenizer", "--rows"],
}


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_lists_the_commands_own_flags(module):
    out = _run(module, "--help")
    assert out.returncode == 0, out.stderr[-2000:]
    for flag in COMMANDS[module]:
        assert f"{flag}:" in out.stdout, f"{module} --help does not list {flag}:\n{out.stdout}"


@pytest.mark.parametrize("args, says", [
    (["llmjp_jax.cli.tokenize", "--input=nowhere/*.jsonl", "--output_dir=/tmp/x", "--tokenizer=t.model"],
     "matches no file"),
    (["llmjp_jax.cli.plot", "no/such/run"], "no/such/run"),
    (["llmjp_jax.cli.train", "--config=configs/tiny.py", "--dry_run", "--target=v9z-8"], "v9z-8"),
    (["llmjp_jax.cli.train", "--config=configs/tiny.py", "--config.data.train_dir=/nowhere/train",
      "--workdir={tmp}/run"], "(set by data.train_dir)"),
    (["llmjp_jax.cli.spm_train", "--input=data/sample/train/en.jsonl", "--model_prefix={tmp}/spm",
      "--vocab_size=32000"], "set --vocab_size to at most"),
    (["llmjp_jax.cli.train", "--config=configs/tiny.py", "--config.train.stpes=10", "--workdir={tmp}/r"],
     '--config.train.stpes=10: no such setting; Did you mean "steps"'),
    (["llmjp_jax.cli.train", "--workdir={tmp}/r"], "--config is required"),
    (["llmjp_jax.cli.train", "--config=configs/tinny.py", "--workdir={tmp}/r"],
     "--config=configs/tinny.py: no such file"),
    (["llmjp_jax.cli.train", "--config=configs/tiny.py", "--workdir=README.md"],
     "--workdir=README.md is a file"),
    (["llmjp_jax.cli.generate", "--workdir={tmp}", "--prompt=a"], "holds no complete checkpoint"),
    (["llmjp_jax.cli.eval", "--workdir={tmp}", "--task={tmp}/none.jsonl"], "--task={tmp}/none.jsonl: no"),
    (["llmjp_jax.cli.convert", "to-hf", "--workdir={tmp}/none", "--output={tmp}/hf"],
     "--workdir={tmp}/none does not exist"),
])
def test_a_users_mistake_is_one_message_and_exit_2(args, says, tmp_path):
    out = _run(*(arg.replace("{tmp}", str(tmp_path)) for arg in args))
    said = out.stdout + out.stderr
    assert out.returncode == 2, said[-2000:]
    assert says.replace("{tmp}", str(tmp_path)) in said and "Traceback" not in said, said[-2000:]


def test_importing_the_model_changes_no_global_flax_setting():
    """The model turned Flax's eager sharding off for every user of Flax on import; it now sets it
    for its own parameters only."""
    out = subprocess.run([sys.executable, "-c", "from flax import nnx; before = nnx.using_eager_sharding(); "
                          "import llmjp_jax.model, llmjp_jax.train.loop; "
                          "print(before, nnx.using_eager_sharding())"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = out.stdout.split()
    assert before == after, out.stdout


# Which package may import which: a package imports only packages of lower layers or its own.
LAYERS = [
    {"llmjp_jax.errors", "llmjp_jax.files", "llmjp_jax.log"},
    {"llmjp_jax.model", "llmjp_jax.optim", "llmjp_jax.parallel", "llmjp_jax.data"},
    {"llmjp_jax.config"},
    {"llmjp_jax.presets", "llmjp_jax.train"},
    {"llmjp_jax.interop", "llmjp_jax.generate", "llmjp_jax.plot", "llmjp_jax.plan", "llmjp_jax.ablate"},
    {"llmjp_jax.cli"},
]


def _package(module: str) -> str:
    """The top-level unit of `module`: llmjp_jax.<first part>."""
    return ".".join(module.split(".")[:2])


def test_packages_import_only_lower_layers():
    """The data flows one way (text -> shards -> loader -> step -> checkpoint -> export): train
    imported interop (a function-level import of the HF reader) while interop imports train."""
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if name == "llmjp_jax":
            continue
        here = layer[_package(name)]
        for target in _imports(path, modules):
            there = layer[_package(target)]
            if there > here or (there == here and _package(target) != _package(name)):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layers: " + ", ".join(sorted(wrong))
