"""reviewflow's own folder in a project (`.reviewflow/`: database, run logs, review reports).

It is created where reviewflow runs, usually inside the user's git repository, so the first
time reviewflow creates it, it writes a `.gitignore` of `*` into it, as pytest and ruff do for
their caches: `git status` never lists it and `git add -A` never commits a database or a log.
The project's word list, `.reviewflow/words.txt`, stays visible to git. A `.reviewflow/` the
user made is left as it is.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

STATE_DIR = ".reviewflow"
WORDLIST = "words.txt"
"""The project's word list (the content template's spelling check reads it): source, kept."""
GITIGNORE = (
    f"# Created by reviewflow: its database, logs and reports are not source.\n*\n!{WORDLIST}\n"
)


def make_dirs(path: str | Path) -> Path:
    """`mkdir -p path`; a `.reviewflow` folder this creates gets its `.gitignore`."""
    path = Path(path)
    absolute = path if path.is_absolute() else Path.cwd() / path
    created = [p for p in (absolute, *absolute.parents) if p.name == STATE_DIR and not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for folder in created:
        ignore = folder / ".gitignore"
        if not ignore.exists():
            # Best effort: a folder that cannot take the file still works for reviewflow.
            with contextlib.suppress(OSError):
                ignore.write_text(GITIGNORE, encoding="utf-8")
    return path
