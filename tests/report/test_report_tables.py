"""Table text (``rapidnn.report.tables``): data escaped once, rendered right everywhere."""

from __future__ import annotations

from rapidnn.report.html import table_html
from rapidnn.report.tables import Table, esc, plain, render_text, to_markdown


def test_escaped_data_reads_back_as_it_was() -> None:
    for text in ("mnist-mlp", "a|b", "**x**", "`c`", r"back\slash", "[red]x[/]", "<i>&"):
        assert plain(esc(text)) == text
    assert esc("a\nb\r\nc") == "a b c"


def test_a_table_keeps_its_cells_whatever_the_data() -> None:
    t = Table(["network", "value"], [[esc("a|b\nc"), "**bold**"], ["raw | pipe", "1"]])
    md = to_markdown(t).splitlines()
    assert md[2] == r"| a\|b c | **bold** |" and md[3] == r"| raw \| pipe | 1 |"
    assert "<b>bold</b>" in table_html(t) and "a|b c" in table_html(t)


def test_the_terminal_shows_data_as_it_is() -> None:
    t = Table(["network"], [[esc("[bold]x[/bold] *y*")], ["**mean**"]])
    text = render_text(t)
    assert "[bold]x[/bold] *y*" in text and "mean" in text and "**" not in text
