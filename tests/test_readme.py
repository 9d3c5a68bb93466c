"""README.ja.md says what README.md says: the same shell commands, block by block, and the same
images and notebook links."""

import os
import re

from .conftest import ROOT


def _read(name: str) -> str:
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        return f.read()


def _command_blocks(text: str) -> list[list[str]]:
    """The ```bash blocks, each as its lines without trailing comments (those are translated)."""
    return [[re.sub(r"\s+#.*$", "", line).rstrip() for line in block.strip().splitlines()]
            for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_japanese_readme_has_the_same_commands():
    english, japanese = _read("README.md"), _read("README.ja.md")
    assert _command_blocks(english), "no command blocks found: the pattern is wrong"
    assert _command_blocks(japanese) == _command_blocks(english)


def test_japanese_readme_has_the_same_images_and_notebooks():
    links = lambda text: sorted(re.findall(r"\((docs/[^)]+|notebooks/[^)]+|https://colab[^)]+)\)", text))  # noqa: E731
    assert links(_read("README.ja.md")) == links(_read("README.md"))
