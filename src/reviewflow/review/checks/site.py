"""The URLs a static site will serve, so the links check asks the site, not the file tree.

A writer links to a page as readers reach it: `/about/` (a Jekyll `permalink:`), `/2024/01/05/
hello.html` (a post), `../install/` (MkDocs directory URLs), `/posts/my-post/` (Hugo). None of
these is a file in the repository, yet each is a working link. Jekyll, Hugo, MkDocs and Sphinx
sites are found by their configuration files (`_config.yml`, `hugo.toml`/`config.toml` with a
content folder, `mkdocs.yml`, `conf.py`) at the repository root or one or two folders down, and
every page of each is given the URL the generator will build for it. A link is broken only
when no page and no static file answers it.
"""

from __future__ import annotations

import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from ...errors import SpecError
from ...limits import LIMITS
from ...yamlsafe import parse_yaml

PAGES = (".md", ".markdown", ".html", ".htm", ".rst", ".rest", ".txt")
MAX_FILES = 20_000
"""Files looked at per site: a bound, so a huge repository costs a bounded scan."""
HEAD_BYTES = 16_384
"""Front matter is read from the first bytes of a page only."""
SKIP_DIRS = {".git", "node_modules", "_site", "site", "public", "_build", "resources", ".venv"}
_DATED = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(.+)$")
_PLACEHOLDER = re.compile(r":([a-z_]+)")
JEKYLL_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}


@dataclass
class Site:
    """One static site: where its sources are and the URL of each page."""

    kind: str
    folder: str
    """Repository-relative folder of its sources ('' for the repository root)."""
    base: str = ""
    """Path prefix of the published site (`/blog` for a Jekyll `baseurl: /blog`)."""
    urls: dict[str, str] = field(default_factory=dict)
    """Normalised URL path → repository-relative source file."""
    pages: dict[str, str] = field(default_factory=dict)
    """Source file → the URL of its page."""
    statics: list[str] = field(default_factory=list)
    """Repository-relative folders whose files are served from the site root (Hugo static/)."""

    def owns(self, path: str) -> bool:
        return not self.folder or path.startswith(self.folder + "/")

    def add(self, source: str, *urls: str) -> None:
        for url in urls:
            key = _normal(url)
            self.urls.setdefault(key, source)
            self.urls.setdefault(key.lower(), source)
        if urls:
            self.pages.setdefault(source, urls[0])

    def resolve(self, root: Path, source: str, target: str) -> str | None:
        """The repository file that answers `target` (a link's path, no fragment) from the
        page built from `source`, or None when the site serves nothing there."""
        page = self.pages.get(source) or "/" + _rel(source, self.folder)
        url = urljoin(page, target) if not target.startswith("/") else target
        path = urlsplit(url).path
        if self.base and (path == self.base or path.startswith(self.base + "/")):
            path = path[len(self.base) :] or "/"
        key = _normal(path)
        for candidate in (key, key.lower()):
            if candidate in self.urls:
                return self.urls[candidate]
        rel = path.lstrip("/")
        for folder in [self.folder, *self.statics]:
            full = posixpath.normpath(posixpath.join(folder, rel)) if rel else folder
            if full.startswith("../") or full == "..":
                continue
            for alt in (full, posixpath.join(full, "index.html")):
                try:
                    hit = root / alt
                    if hit.is_file() and hit.resolve().is_relative_to(root):
                        return alt
                except (OSError, ValueError):
                    continue
        return None


def _normal(url: str) -> str:
    """`/a/b/`, `/a/b`, `/a/b/index.html` and `/a/b.html` name the same page to a reader's
    browser on the usual hosts (GitHub Pages, Netlify): one key for all of them."""
    path = "/" + url.strip().lstrip("/")
    for suffix in ("/index.html", "/index.htm", ".html", ".htm"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    return path.rstrip("/") or "/"


def _rel(path: str, folder: str) -> str:
    return path[len(folder) + 1 :] if folder else path


def _read_head(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            return fh.read(HEAD_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def front_matter(text: str) -> dict[str, Any]:
    """YAML (`---`) or TOML (`+++`) front matter as a mapping; {} when none or unreadable."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    for fence, load in (("---", _yaml), ("+++", _toml)):
        if text.startswith(fence + "\n"):
            end = text.find("\n" + fence, len(fence))
            if end < 0:
                return {}
            data = load(text[len(fence) + 1 : end])
            return data if isinstance(data, dict) else {}
    return {}


def _yaml(text: str) -> Any:
    """Front matter and configs come from the reviewed change: untrusted, so parsed with the
    same bounds as a workflow file (aliases, nesting, size)."""
    try:
        return parse_yaml(text)
    except SpecError:
        return None


def _toml(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    data = _toml(text) if path.suffix == ".toml" else _yaml(text)
    if data is None and path.suffix in (".yml", ".yaml"):
        data = _lenient_yaml(text)
    return data if isinstance(data, dict) else {}


class _AnyTagLoader(yaml.SafeLoader):
    """mkdocs.yml uses tags (`!!python/name:...`, `!ENV`): read them as plain values.

    No aliases: a config in a pull request could otherwise expand into gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("aliases are not read in a site config")
        return super().compose_node(parent, index)


_AnyTagLoader.add_multi_constructor("", lambda loader, suffix, node: None)


def _lenient_yaml(text: str) -> Any:
    if len(text) > LIMITS.max_file_bytes:
        return None
    try:
        return yaml.load(text, Loader=_AnyTagLoader)  # nosec B506 - a SafeLoader subclass
    except yaml.YAMLError:
        return None


def _files(root: Path, folder: str) -> list[str]:
    """Repository-relative files under `folder`, hidden and build folders left out."""
    out: list[str] = []
    base = root / folder if folder else root
    stack = [base]
    while stack and len(out) < MAX_FILES:
        current = stack.pop()
        try:
            entries = sorted(current.iterdir(), key=lambda p: p.name)
        except OSError:
            continue
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if entry.name not in SKIP_DIRS and not entry.name.startswith("."):
                    stack.append(entry)
            elif entry.is_file():
                out.append(entry.relative_to(root).as_posix())
    return out


def _date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", str(value or ""))
    if m:
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            return None
    return None


def _expand(pattern: str, values: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        for size in range(len(name), 0, -1):  # `:title:output_ext`, `:year_x` ...
            if name[:size] in values:
                return values[name[:size]] + name[size:]
        return m.group(0)

    out = _PLACEHOLDER.sub(one, pattern)
    return re.sub(r"/{2,}", "/", "/" + out.lstrip("/"))


def slugify(text: str) -> str:
    return re.sub(r"[^\w]+", "-", text.strip().lower()).strip("-")


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


# --- Jekyll ------------------------------------------------------------------------------------


def _jekyll(root: Path, folder: str, config: dict[str, Any]) -> Site:
    base = str(config.get("baseurl") or "").rstrip("/")
    site = Site("jekyll", folder, base="/" + base.lstrip("/") if base else "")
    style = str(config.get("permalink") or "date")
    post_pattern = JEKYLL_STYLES.get(style, style)
    pretty = style == "pretty" or post_pattern.endswith("/")
    collections = config.get("collections") or {}
    if isinstance(collections, list):
        collections = {str(c): {} for c in collections}
    for rel in _files(root, folder):
        inner = _rel(rel, folder)
        parts = inner.split("/")
        name = parts[-1]
        stem, ext = posixpath.splitext(name)
        if ext.lower() not in PAGES or inner.startswith(("_site/", "_drafts/")):
            continue
        meta = front_matter(_read_head(root / rel))
        if "_posts" in parts[:-1]:
            m = _DATED.match(stem)
            if not m:
                continue
            at = parts.index("_posts")
            cats = [*parts[:at], *_words(meta.get("categories") or meta.get("category"))]
            values = {
                "year": m.group(1),
                "month": m.group(2),
                "day": m.group(3),
                "i_month": str(int(m.group(2))),
                "i_day": str(int(m.group(3))),
                "short_year": m.group(1)[2:],
                "title": str(meta.get("slug") or m.group(4)),
                "slug": str(meta.get("slug") or m.group(4)),
                "categories": "/".join(c.lower() for c in cats),
                "output_ext": ".html",
            }
            when = _date(meta.get("date"))
            if when is not None:
                values.update(year=f"{when.year:04}", month=f"{when.month:02}", day=f"{when:%d}")
            pattern = str(meta.get("permalink") or post_pattern)
            site.add(rel, _expand(pattern, values))
            continue
        if parts[0].startswith("_"):
            label = parts[0][1:]
            spec = collections.get(label)
            if not isinstance(spec, dict) or not spec.get("output"):
                continue
            path = "/".join(parts[1:])
            values = {
                "collection": label,
                "path": posixpath.splitext(path)[0],
                "name": slugify(stem),
                "title": str(meta.get("slug") or stem),
                "output_ext": ".html",
            }
            pattern = str(meta.get("permalink") or spec.get("permalink") or "")
            site.add(rel, _expand(pattern or "/:collection/:path:output_ext", values))
            continue
        if any(p.startswith(("_", ".")) for p in parts):
            continue
        own = meta.get("permalink")
        folder_url = "/" + "/".join(parts[:-1])
        if own:
            site.add(rel, _expand(str(own), {"path": posixpath.splitext(inner)[0]}))
        elif stem in ("index", "README"):
            site.add(rel, folder_url.rstrip("/") + "/")
        else:
            page = posixpath.join(folder_url, stem)
            site.add(rel, page + ("/" if pretty else ".html"), page + ".html")
    return site


# --- Hugo --------------------------------------------------------------------------------------


def _hugo(root: Path, folder: str, config: dict[str, Any]) -> Site:
    content = posixpath.join(
        folder, str(config.get("contentDir") or config.get("contentdir") or "content")
    )
    statics = config.get("staticDir") or config.get("staticdir") or "static"
    ugly = bool(config.get("uglyURLs") or config.get("uglyurls"))
    base = urlsplit(str(config.get("baseURL") or config.get("baseurl") or "")).path.rstrip("/")
    site = Site(
        "hugo",
        content.strip("/"),
        base=base,
        statics=[posixpath.join(folder, s) for s in _words(statics) or ["static"]],
    )
    permalinks = config.get("permalinks") or {}
    if isinstance(permalinks.get("page"), dict):  # Hugo >= 0.120: permalinks.page.<section>
        permalinks = permalinks["page"]
    for rel in _files(root, site.folder):
        inner = _rel(rel, site.folder)
        parts = inner.split("/")
        stem, ext = posixpath.splitext(parts[-1])
        if ext.lower() not in (".md", ".markdown", ".html", ".htm", ".rst", ".adoc", ".org"):
            continue
        meta = front_matter(_read_head(root / rel))
        section = parts[0] if len(parts) > 1 else ""
        if stem in ("_index", "index"):
            folder_path = "/".join(parts[:-1])
            urls = ["/" + folder_path + "/" if folder_path else "/"]
        else:
            slug = str(meta.get("slug") or stem)
            values = {
                "section": section,
                "sections": "/".join(parts[:-1]),
                "title": slugify(str(meta.get("title") or stem)),
                "slug": slugify(slug)
                if meta.get("slug")
                else slugify(str(meta.get("title") or stem)),
                "filename": stem,
                "contentbasename": stem,
            }
            when = _date(meta.get("date"))
            if when is not None:
                values.update(year=f"{when.year:04}", month=f"{when.month:02}", day=f"{when:%d}")
            pattern = permalinks.get(section) if isinstance(permalinks, dict) else None
            if pattern:
                urls = [_expand(str(pattern), values)]
            else:
                page = "/" + "/".join([*parts[:-1], slug])
                urls = [page + (".html" if ugly else "/")]
        if meta.get("url"):
            urls.insert(0, str(meta["url"]))
        urls += [str(a) for a in meta.get("aliases") or [] if isinstance(a, str)]
        site.add(rel, *urls)
    return site


# --- MkDocs and Sphinx -------------------------------------------------------------------------


def _mkdocs(root: Path, folder: str, config: dict[str, Any]) -> Site:
    docs = posixpath.join(folder, str(config.get("docs_dir") or "docs")).strip("/")
    directory_urls = config.get("use_directory_urls", True) is not False
    base = urlsplit(str(config.get("site_url") or "")).path.rstrip("/")
    site = Site("mkdocs", docs, base=base)
    for rel in _files(root, docs):
        inner = _rel(rel, docs)
        stem, ext = posixpath.splitext(inner)
        if ext.lower() not in (".md", ".markdown"):
            continue
        parent, name = posixpath.split(stem)
        if name in ("index", "README"):
            site.add(rel, "/" + parent + "/" if parent else "/")
        elif directory_urls:
            site.add(rel, "/" + stem + "/")
        else:
            site.add(rel, "/" + stem + ".html")
    return site


def _sphinx(root: Path, folder: str) -> Site:
    site = Site("sphinx", folder)
    for rel in _files(root, folder):
        stem, ext = posixpath.splitext(_rel(rel, folder))
        if ext.lower() in (".rst", ".rest", ".md", ".txt"):
            site.add(rel, "/" + stem + ".html", "/" + stem + "/")
    return site


CANDIDATE_FOLDERS = ("", "docs", "doc", "site", "website", "docs/source", "doc/source")
HUGO_CONFIGS = ("hugo.toml", "hugo.yaml", "hugo.yml", "config.toml", "config.yaml", "config.yml")


def find_sites(root: Path) -> list[Site]:
    """The static sites of the repository, the most deeply nested first (a file belongs to
    the innermost site around it)."""
    sites: list[Site] = []
    for folder in CANDIDATE_FOLDERS:
        here = root / folder if folder else root
        if not here.is_dir():
            continue
        if (here / "_config.yml").is_file() or (here / "_config.yaml").is_file():
            name = "_config.yml" if (here / "_config.yml").is_file() else "_config.yaml"
            sites.append(_jekyll(root, folder, _config(here / name)))
        for name in ("mkdocs.yml", "mkdocs.yaml"):
            if (here / name).is_file():
                sites.append(_mkdocs(root, folder, _config(here / name)))
                break
        for name in HUGO_CONFIGS:
            config = _config(here / name) if (here / name).is_file() else None
            if config is None:
                continue
            content = str(config.get("contentDir") or "content")
            if name.startswith("hugo.") or (here / content).is_dir():
                sites.append(_hugo(root, folder, config))
                break
        if (here / "conf.py").is_file():
            sites.append(_sphinx(root, folder))
    return sorted(sites, key=lambda s: -len(s.folder))
