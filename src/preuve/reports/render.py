"""The attestation page as HTML (self-contained: e-mail, web console) and as PDF (WeasyPrint, fonts embedded).

Both come from the same template and the same view (:mod:`preuve.reports.view`); the PDF differs only by
``@font-face`` rules pointing at the DejaVu files on this server, so that the PDF carries exactly those fonts
whatever fontconfig would otherwise pick. The HTML never references a local file: it travels.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from preuve.reports.formats import Lang
from preuve.reports.view import Files, page

log = logging.getLogger(__name__)

TEMPLATE = "attestation.html.j2"
STYLESHEET = "attestation.css"
# Debian's fonts-dejavu-core; other systems fall back to whatever fontconfig finds for "DejaVu Sans".
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/TTF"), Path("/usr/share/fonts/dejavu"))
_FACES = (
    ("DejaVu Sans", "normal", "normal", "DejaVuSans.ttf"),
    ("DejaVu Sans", "bold", "normal", "DejaVuSans-Bold.ttf"),
    ("DejaVu Sans", "normal", "italic", "DejaVuSans-Oblique.ttf"),
    ("DejaVu Sans Mono", "normal", "normal", "DejaVuSansMono.ttf"),
)


class RenderError(Exception):
    """The page could not be produced (a broken template or WeasyPrint failure), in one sentence."""


def _css_string(value: object) -> Markup:
    """A CSS string literal: quotes, backslashes and line breaks escaped, nothing that closes the <style>."""
    escaped = "".join(c if c.isalnum() or c in " .,:;·-_/()" else f"\\{ord(c):06x}" for c in str(value))
    return Markup(f'"{escaped}"')  # noqa: S704 - every character outside a small safe set is escaped above


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("preuve.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug to see, never a silent blank on a client's page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["css_string"] = _css_string
    return environment


def _stylesheet() -> str:
    return resources.files("preuve.reports").joinpath("templates", STYLESHEET).read_text(encoding="utf-8")


def font_faces() -> str:
    """``@font-face`` rules for the DejaVu files found on this server ("" when none is, with a warning)."""
    for directory in FONT_DIRS:
        if (directory / _FACES[0][3]).is_file():
            rules = [
                f'@font-face {{ font-family: "{family}"; font-weight: {weight}; font-style: {style}; '
                f'src: url("{(directory / name).as_uri()}"); }}'
                for family, weight, style, name in _FACES
                if (directory / name).is_file()
            ]
            return "\n".join(rules)
    log.warning("DejaVu fonts not found in %s: the PDF uses fontconfig's choice", ", ".join(map(str, FONT_DIRS)))
    return ""


def render_html(predicate: dict[str, Any], lang: Lang, files: Files, *, for_pdf: bool = False) -> str:
    view = page(predicate, lang, files)
    try:
        template = _environment().get_template(TEMPLATE)
        return template.render(
            **view,
            stylesheet=Markup(_stylesheet()),  # noqa: S704 - our own packaged stylesheet
            font_faces=Markup(font_faces() if for_pdf else ""),  # noqa: S704 - built above from file paths
        )
    except jinja2.TemplateError as exc:
        raise RenderError(f"the attestation template failed: {type(exc).__name__}: {exc}") from exc


def html_to_pdf(html: str) -> bytes:
    """The PDF of ``html``: A4, fonts embedded (subset), PDF 1.7; no network access (no external resource)."""
    import weasyprint

    # Only local files (the fonts): the page references nothing else, and must never reach the network.
    fetcher = weasyprint.urls.URLFetcher(allowed_protocols={"file"}, fail_on_errors=True)

    try:
        document = weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=".")
        pdf = document.write_pdf(pdf_version="1.7")
    except Exception as exc:  # WeasyPrint raises many kinds; the caller needs one sentence
        raise RenderError(f"WeasyPrint could not produce the PDF: {type(exc).__name__}: {exc}") from exc
    if not isinstance(pdf, bytes):  # pragma: no cover - write_pdf without a target returns bytes
        raise RenderError("WeasyPrint returned no PDF")
    return pdf


def render_pdf(predicate: dict[str, Any], lang: Lang, files: Files) -> bytes:
    return html_to_pdf(render_html(predicate, lang, files, for_pdf=True))
