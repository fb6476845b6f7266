"""Console languages: Vietnamese by default, English on request. Babel catalogs + Jinja2's i18n extension.

Messages are written in English in the templates and code (`_("…")`) and translated in
server/api/locale/<lang>/LC_MESSAGES/messages.po; the catalogs are compiled in memory when first used,
so a .po edit needs no build step. To add strings: `pybabel extract -F babel.cfg -o messages.pot .`
then `pybabel update -i messages.pot -d server/api/locale` (docs/console.md). A test fails if any
message of a page lacks its Vietnamese translation.
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from fastapi import Request
from jinja2 import Environment, pass_context
from jinja2.runtime import Context

LOCALES = ("vi", "en")
DEFAULT_LOCALE = "vi"
COOKIE = "motcua_lang"
LOCALE_DIR = Path(__file__).with_name("locale")


@lru_cache(maxsize=len(LOCALES))
def translations(locale: str) -> Translations:
    """The compiled catalog of `locale` (fuzzy entries left out, as msgfmt does)."""
    with (LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=locale)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(buf)


def locale_of(request: Request) -> str:
    """?lang= (which also sets the cookie), else the cookie, else Vietnamese."""
    for value in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if value in LOCALES:
            return value
    return DEFAULT_LOCALE


def gettext(locale: str, message: str) -> str:
    return str(translations(locale).gettext(message))


@pass_context
def _gettext(ctx: Context, message: str) -> str:
    return gettext(ctx.get("locale") or DEFAULT_LOCALE, message)


@pass_context
def _ngettext(ctx: Context, singular: str, plural: str, n: int) -> str:
    return str(translations(ctx.get("locale") or DEFAULT_LOCALE).ngettext(singular, plural, n))


COMPACT = "yyyy-MM-dd HH:mm:ss"  # for tables of many entries: sortable, one line, the same in every language


@pass_context
def _when(ctx: Context, value: datetime | None, fmt: str = "short") -> str:
    """A time in the offices' zone, written the way the reader's language writes it."""
    if value is None:
        return "—"
    zone: ZoneInfo = ctx["zone"]
    pattern = COMPACT if fmt == "compact" else fmt
    return str(format_datetime(value.astimezone(zone), pattern, locale=ctx.get("locale") or DEFAULT_LOCALE))


def _json(value: Any) -> str:
    """JSON for people to read (Vietnamese as it is, not \\u escapes); autoescaping makes it safe in HTML."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@pass_context
def _num(ctx: Context, value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    return str(format_decimal(round(float(value), digits), locale=ctx.get("locale") or DEFAULT_LOCALE))


def install(env: Environment) -> None:
    """Give templates `_()`, `{% trans %}`, and the `when` and `num` filters, per the context's locale."""
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext=_gettext, ngettext=_ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["when"] = _when
    env.filters["num"] = _num
    env.filters["readable_json"] = _json
