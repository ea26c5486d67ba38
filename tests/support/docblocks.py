"""The shell blocks of README.md and docs/: found, classified by the comment above them, run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console", "zsh"})
# The comment right above a fence says how the block is run:
#   <!-- not run: REASON -->            never run here (real AWS, a cluster, CI itself ...)
#   <!-- background: HOST:PORT -->      started in the background; later blocks wait for the port
#   <!-- exit: N -->                    its last command exits N (an error shown on purpose)
_MARK = re.compile(r"<!--\s*(not run|background|exit):\s*(.*?)\s*-->\s*$")
_FENCE = re.compile(r"^(`{3,})(\w*)[^\n]*$")


@dataclass(frozen=True)
class Block:
    """One fenced block of a page."""

    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    mark: str | None  # "not run", "background", "exit" or None
    argument: str  # the mark's argument: a reason, HOST:PORT, or an exit code

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """Every page a reader follows: the README and each page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of one page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index].strip())
        if opening is None:
            index += 1
            continue
        fence, language = opening.groups()
        end = index + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        above = lines[index - 1].strip() if index else ""
        mark = _MARK.match(above)
        found.append(
            Block(
                page=str(page.relative_to(ROOT)),
                line=index + 1,
                language=language,
                text="\n".join(lines[index + 1 : end]),
                mark=mark.group(1) if mark else None,
                argument=mark.group(2) if mark else "",
            )
        )
        index = end + 1
    return found


def shell_blocks(page: Path) -> list[Block]:
    return [block for block in blocks(page) if block.language in SHELL_LANGUAGES]


def script(page_blocks: list[Block]) -> str:
    """One bash script for a page: its runnable blocks in order, as a reader types them in
    one terminal (exports and `cd` carry over), each announced on stderr so a failure names it."""
    trap = "trap 'echo \"::failed at $BLOCK\" >&2' ERR"
    parts = ["set -eo pipefail", trap]
    for block in page_blocks:
        if block.mark == "not run":
            continue
        parts.append(f"BLOCK={block.where}")
        if block.mark == "background":
            host, port = block.argument.rsplit(":", 1)
            parts.append(f"( {block.text}\n) > background-{block.line}.log 2>&1 &")
            parts.append(_wait_for(host, int(port), block.where))
        elif block.mark == "exit":
            parts.append(f"set +e\ntrap - ERR\n{block.text}\ncode=$?\nset -e\n{trap}")
            parts.append(
                f'[ "$code" -eq {int(block.argument)} ] || '
                f'{{ echo "::{block.where} exited $code, not {int(block.argument)}" >&2; exit 97; }}'
            )
        else:
            parts.append(block.text)
    return "\n".join(parts) + "\n"


def _wait_for(host: str, port: int, where: str) -> str:
    return (
        f"for _ in $(seq 600); do (exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null && break; "
        f"sleep 0.1; done; (exec 3<>/dev/tcp/{host}/{port}) 2>/dev/null || "
        f'{{ echo "::{where}: nothing listens on {host}:{port}" >&2; exit 98; }}'
    )
