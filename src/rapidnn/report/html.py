"""A tiny report document rendered as Markdown and as self-contained HTML (images inline)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidnn.report.tables import ESCAPED, Table, plain, to_markdown


@dataclass
class Document:
    """Blocks in order: ``("h", level, text)``, ``("p", text)``, ``("banner", text)`` (a
    warning box), ``("table", Table)``, ``("details", summary, Table)`` (a table folded away
    under its summary), ``("img", path, caption, link)``: text and captions are Markdown (data
    escaped with :func:`rapidnn.report.tables.esc`); ``link`` is the image's address in the
    Markdown (relative to the report), ``path`` the file embedded in the HTML."""

    title: str
    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("p", text))

    def banner(self, text: str) -> None:
        """A paragraph shown as a warning box (the quick-mode notice)."""
        self.blocks.append(("banner", text))

    def table(self, table: Table) -> None:
        self.blocks.append(("table", table))

    def details(self, summary: str, table: Table) -> None:
        """``table`` folded under ``summary`` (Markdown), opened on a click."""
        self.blocks.append(("details", summary, table))

    def image(self, path: Path, caption: str, link: str) -> None:
        self.blocks.append(("img", Path(path), caption, link))

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "banner":
                out += [f"> {b[1]}", ""]
            elif b[0] == "table":
                out += _table_markdown(b[1])
            elif b[0] == "details":
                out += [f"<details><summary>{html.escape(plain(b[1]), quote=False)}</summary>", "",
                        *_table_markdown(b[2]), "</details>", ""]
            else:
                out += [f"![{b[2]}]({b[3]})", "", f"*{b[2]}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                body.append(f"<h{b[1]}>{_inline(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                body.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "banner":
                body.append(f'<div class="quick">{_inline(b[1])}</div>')
            elif b[0] == "table":
                body.append(table_html(b[1]))
            elif b[0] == "details":
                body.append(f"<details><summary>{_inline(b[1])}</summary>{table_html(b[2])}"
                            "</details>")
            else:
                data = base64.b64encode(Path(b[1]).read_bytes()).decode("ascii")
                body.append(f'<figure><img alt="{html.escape(plain(b[2]))}" '
                            f'src="data:image/png;base64,{data}"/>'
                            f"<figcaption>{_inline(b[2])}</figcaption></figure>")
        return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/>"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
                "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _table_markdown(table: Table) -> list[str]:
    return ([f"*{table.title}*", ""] if table.title else []) + [to_markdown(table), ""]


#: the page's style: text at a reading size, tables that scroll rather than overflow, figures
#: shown at their drawn size (plots.WIDTH_PX) or narrower, and the quick-mode banner
_CSS = ("body{font-family:sans-serif;font-size:16px;line-height:1.45;max-width:1200px;"
        "margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em;display:block;"
        "overflow-x:auto}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}"
        "td.n{text-align:right}th{background:#f2f2f2}"
        "caption{font-style:italic;text-align:left}"
        "figure{margin:1.5em 0}img{max-width:100%}"
        "figcaption{font-style:italic;font-size:0.95em}"
        "details{margin:1em 0}summary{cursor:pointer;font-weight:bold}"
        ".quick{background:#fff3cd;border:2px solid #d4a017;border-left:8px solid #d4a017;"
        "padding:0.8em 1em;margin:1em 0;font-size:1.05em}")


#: escaped characters are held as private-use code points while the markup is converted
_HELD = 0xE000


def _inline(text: str) -> str:
    """HTML-escape, then the two bits of Markdown the report uses: **bold** and `code`;
    backslash-escaped characters (data) are shown as they are, never read as markup."""
    s = html.escape(ESCAPED.sub(lambda m: chr(_HELD + ord(m.group(1))), text))
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
    return re.sub("[\ue000-\ue07f]", lambda m: html.escape(chr(ord(m.group()) - _HELD)), s)


#: a cell that reads as a number (right-aligned; text cells are left-aligned)
_NUMERIC = re.compile(r"[-+<>]?\s?[\d.,]+(?:[x%]|\s|$)")


def _td(cell: str) -> str:
    numeric = _NUMERIC.match(plain(cell))
    return f'<td class="n">{_inline(cell)}</td>' if numeric else f"<td>{_inline(cell)}</td>"


def table_html(table: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.headers)
    rows = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in table.rows)
    cap = f"<caption>{_inline(table.title)}</caption>" if table.title else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
