"""The dashboard's shipped files: vendored libraries match their manifest (name, version,
registry integrity, sha256), pages reference only files that exist, the badge colours are the
Mermaid report's, and no template or script writes HTML from data."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import reviewflow.server.ui as ui
from reviewflow.server.ui_graph import state_styles

STATIC = Path(ui.__file__).parent / "static"
TEMPLATES = Path(ui.__file__).parent / "templates"


def test_vendored_files_match_the_manifest() -> None:
    manifest = json.loads((STATIC / "vendor" / "manifest.json").read_text())
    names = {p["name"] for p in manifest["packages"]}
    assert {"cytoscape", "cytoscape-dagre"} <= names
    for package in manifest["packages"]:
        assert re.fullmatch(r"\d+\.\d+\.\d+", package["version"])
        assert package["integrity"].startswith("sha512-")
        for f in package["files"]:
            data = (STATIC / "vendor" / f["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"], f["path"]


def test_pages_load_only_shipped_scripts_and_no_inline_code() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        for src in re.findall(r'<script src="/ui/static/([^"]+)"', text):
            assert (STATIC / src).is_file(), f"{template.name}: {src}"
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template.name
        assert not re.search(r"\son\w+=", text), template.name  # no inline handlers
        assert "|safe" not in text, template.name


def test_own_scripts_never_write_html() -> None:
    for script in STATIC.glob("*.js"):
        text = script.read_text()
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, script.name
        assert "document.write" not in text and "eval(" not in text, script.name


def test_badge_colours_are_the_mermaid_report_colours() -> None:
    css = (STATIC / "app.css").read_text()
    for state, s in state_styles().items():
        rule = f".state-{state} {{ background: {s['fill']}; border-color: {s['stroke']}; "
        assert rule in css, state
