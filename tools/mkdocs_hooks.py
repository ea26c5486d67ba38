"""MkDocs hooks: links from a page to a repository file outside docs/ are served with the site.

A page links `../deploy/ecs/task-definition.json` so the link works on GitHub and in a
checkout; the site copies that file under `repo/` and points the link there. A link to a file
that does not exist fails the build (`mkdocs build --strict` is part of `make lint`).
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

# A Markdown link or image target that leaves docs/: `](../x)`, `](../../x#anchor)`.
_OUTSIDE = re.compile(r"\]\(((?:\.\./)+[^)#\s]+)(#[^)\s]*)?\)")
_SITE_DIR = "repo"


def _target(config: MkDocsConfig, page_uri: str, link: str) -> tuple[Path, str] | None:
    """The repository file a link names and its path in the repository, if it leaves docs/."""
    docs = Path(config.docs_dir).resolve()
    root = docs.parent
    resolved = (docs / posixpath.dirname(page_uri) / link).resolve()
    if resolved.is_relative_to(docs):
        return None  # MkDocs checks links inside docs/ itself
    if not resolved.is_relative_to(root):
        raise PluginError(f"{page_uri}: link {link!r} leaves the repository")
    if not resolved.is_file():
        raise PluginError(f"{page_uri}: link {link!r} names no file of the repository")
    return resolved, resolved.relative_to(root).as_posix()


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    """Add every repository file a page links to, under `repo/`."""
    added: set[str] = set()
    for page in [f for f in files if f.is_documentation_page()]:
        text = Path(page.abs_src_path or "").read_text(encoding="utf-8")
        for link, _anchor in _OUTSIDE.findall(text):
            found = _target(config, page.src_uri, link)
            if found is None or found[1] in added:
                continue
            added.add(found[1])
            uri = f"{_SITE_DIR}/{found[1]}"
            files.append(File.generated(config, uri, abs_src_path=str(found[0])))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **_: Any) -> str:
    """Point each link that leaves docs/ at the copy the site serves."""

    def local(match: re.Match[str]) -> str:
        found = _target(config, page.file.src_uri, match[1])
        if found is None:
            return match[0]
        here = posixpath.dirname(page.file.src_uri)
        path = posixpath.relpath(f"{_SITE_DIR}/{found[1]}", here or ".")
        return f"]({path}{match[2] or ''})"

    return _OUTSIDE.sub(local, markdown)
