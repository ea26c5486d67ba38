"""The HTML page's markup and CSS, browser or not: every table in a box of its own that scrolls
and never widens the page, long values that may wrap, cut tables that say so and link their CSV,
account names beside ids."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

from collector.report.htmlpage import _CSS, MAX_HTML_ROWS, write_html
from collector.report.model import Report, Table

ARN = "arn:aws:iam::123456789012:role/org/payments/production/service-role/payments-batch-0001"


class _Boxes(HTMLParser):
    """Each <table>'s enclosing element, and the text between <h2> and the first <table>."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str]] = []
        self.table_parents: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.table_parents.append(self.open[-1])
        if tag not in ("br", "wbr", "meta"):
            self.open.append((tag, dict(attrs).get("class") or ""))

    def handle_endtag(self, tag: str) -> None:
        while self.open and self.open.pop()[0] != tag:
            pass


def _rule(selector: str) -> str:
    found = re.search(r"(?m)^" + re.escape(selector) + r" \{([^}]*)\}", _CSS)
    assert found, f"no CSS rule for {selector}"
    return found.group(1)


def _page(report: Report, links: dict[str, str] | None = None) -> str:
    out = io.StringIO()
    if links is None:
        write_html(report, out)
    else:
        write_html(report, out, links=links)
    return out.getvalue()


def _wide(rows: int, *, named: bool = False) -> Table:
    columns = ("principal_arn", "account_id", "service_name", "used_by")
    row = (ARN, "123456789012", "AWS Identity and Access Management Access Analyzer", [ARN])
    if named:
        return Table(
            "unused", "Unused", (*columns, "account_name"), [(*row, "payments-prod")] * rows
        )
    return Table("unused", "Unused", columns, [row] * rows)


def test_every_table_sits_in_a_box_that_scrolls_and_never_widens_the_page() -> None:
    """Each <table> is the child of a `div.scroll` whose CSS scrolls it inside its own box and
    caps it at the page's width, so a table too wide for the window cannot push `used_by`
    (the last column) off the page's right edge."""
    html = _page(Report("r", [_wide(3), Table("two", "Two", ("a",), [("x",)])]))
    parser = _Boxes()
    parser.feed(html)
    assert parser.table_parents == [("div", "scroll"), ("div", "scroll")]
    box = _rule(".scroll")
    assert "overflow: auto" in box and "max-width: 100%" in box
    assert "max-width: 100%" in _rule("svg")  # a wide chart shrinks, too


def test_long_values_may_wrap_at_slashes_and_underscores() -> None:
    """ARNs, service names and column names get break points after `/` and `_` and sit in
    wrapping cells, so the table can be as narrow as its window."""
    html = _page(Report("r", [_wide(1)]))
    assert "role/<wbr>org/<wbr>payments/<wbr>production/" in html
    assert "principal_<wbr>arn" in html and "used_<wbr>by" in html
    assert html.count('<td class="wrap"') == 3  # principal_arn, service_name, used_by
    assert "overflow-wrap: anywhere" in _rule("td.wrap")


def test_a_cut_table_says_how_many_before_it_and_links_its_csv() -> None:
    """Over MAX_HTML_ROWS rows: the first MAX_HTML_ROWS, and a line above (and below) the
    table with how many rows there are and a link to the CSV beside the page."""
    total = MAX_HTML_ROWS + 7
    html = _page(Report("r", [_wide(total)]), links={"unused": "report.unused.csv"})
    said = f"Showing the first {MAX_HTML_ROWS:,} of {total:,} rows."
    assert html.count(said) == 2 and html.index(said) < html.index("<table")
    assert html.count('<a href="report.unused.csv">report.unused.csv</a>') == 2
    assert html.count("<tr>") == MAX_HTML_ROWS + 1  # and the header row


def test_a_cut_table_without_a_csv_says_how_to_get_every_row() -> None:
    """On stdout there is no CSV beside the page: the line says how to get all rows."""
    html = _page(Report("r", [_wide(MAX_HTML_ROWS + 1)]))
    assert f"first {MAX_HTML_ROWS:,} of {MAX_HTML_ROWS + 1:,} rows" in html
    assert "--output REPORT.html also writes REPORT.unused.csv beside it; --format csv" in html
    assert "<a href" not in html


def test_a_whole_table_has_no_cut_line() -> None:
    """MAX_HTML_ROWS rows exactly: all shown, nothing said about cutting."""
    html = _page(Report("r", [_wide(MAX_HTML_ROWS)]))
    assert "Showing the first" not in html and html.count("<tr>") == MAX_HTML_ROWS + 1


def test_named_accounts_show_name_and_id_in_the_account_column() -> None:
    """With `account_name` the page shows `name (id)` in account_id and no account_name
    column; without it, the bare id as before."""
    named = _page(Report("r", [_wide(1, named=True)]))
    assert '<td class="account">payments-prod (123456789012)</td>' in named
    assert "account_<wbr>name" not in named
    plain = _page(Report("r", [_wide(1)]))
    assert '<td class="account">123456789012</td>' in plain
