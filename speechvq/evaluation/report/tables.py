"""The report's tables, written once and exported three ways: Markdown (report.md), CSV and LaTeX.

A renderer builds a `Table` from the cells it shows (numbers already formatted, ``n/a`` where a
figure could not be computed) and calls `export_table`, which writes ``report/tables/<name>.csv``
(RFC 4180, one header row, for spreadsheets and pandas) and ``report/tables/<name>.tex`` (a
booktabs ``table`` with the title and notes as its caption, to ``\\input`` into a paper) and
returns the Markdown lines, so the three never disagree. `abbreviations` defines the short
column headers a wide table uses (``ph pur`` = phone purity). Task-agnostic.

    t = Table("units_test", "Units on test", ["system", "map acc"], [["vqvae", "56.7"]],
              strong={0}, notes=[abbreviations(columns)])
    md += export_table(out, t)        # writes tables/units_test.csv and .tex
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from speechvq.fileio import atomic_write_text
from speechvq.models.outputs import Metric

TABLES = "tables"  # the folder under report/ that holds the exports
_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
          "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
          "^": r"\textasciicircum{}"}


@dataclass
class Table:
    """One table as the report shows it.

    Attributes:
        name: the export's file stem (``tables/<name>.csv``); letters, digits, ``_.+-``.
        title: what it shows, one sentence (the LaTeX caption starts with it).
        columns: the header cells; the first column is the row label.
        rows: the cells, as shown (formatted numbers, ``n/a``), one list per row.
        strong: rows whose label is bold (the main system).
        notes: sentences under the table (abbreviations, units); Markdown backticks allowed.
        align: one letter per column, ``l`` or ``r`` (default: the label left, numbers right).
    """

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    strong: set[int] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)
    align: str = ""

    @property
    def spec(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)

    def markdown(self) -> list[str]:
        """The table as Markdown lines, aligned as `spec` says."""
        lines = ["| " + " | ".join(self.columns) + " |",
                 "|" + "".join("---:|" if a == "r" else "---|" for a in self.spec)]
        for i, row in enumerate(self.rows):
            label = f"**{row[0]}**" if i in self.strong else row[0]
            lines.append("| " + " | ".join([label, *row[1:]]) + " |")
        return lines

    def csv(self) -> str:
        """The header and the rows as CSV (no bold, no notes)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buf.getvalue()

    def latex(self) -> str:
        """A booktabs table (``\\usepackage{booktabs}``) with the title and notes as caption."""
        caption = " ".join([self.title.rstrip(".") + ".", *(n for n in self.notes if n)])
        body = []
        for i, row in enumerate(self.rows):
            cells = [latex_escape(c) for c in row]
            if i in self.strong:
                cells[0] = rf"\textbf{{{cells[0]}}}"
            body.append(" & ".join(cells) + r" \\")
        return "\n".join([
            f"% {self.name}: written by `speechvq report`; needs \\usepackage{{booktabs}}",
            r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
            rf"\label{{tab:{self.name}}}", rf"\begin{{tabular}}{{{self.spec}}}", r"\toprule",
            " & ".join(latex_escape(c) for c in self.columns) + r" \\", r"\midrule", *body,
            r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def latex_escape(text: str) -> str:
    """`text` with LaTeX's special characters escaped and Markdown backticks dropped."""
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX[m.group()], str(text).replace("`", ""))


def abbreviations(metrics: Iterable[Metric]) -> str:
    """'Abbreviations: ph pur = phone purity; ...' for the metrics whose column header is a
    short form of their label ('' when there is none)."""
    pairs = dict.fromkeys(f"{m.short} = {m.label}" for m in metrics
                          if m.short and m.short != m.label)
    return f"Abbreviations: {'; '.join(pairs)}." if pairs else ""


def export_table(out: Path, table: Table) -> list[str]:
    """Write ``out/tables/<name>.csv`` and ``.tex`` (atomically) and return the table's
    Markdown lines, its notes and links to the two files."""
    for ext, text in (("csv", table.csv()), ("tex", table.latex())):
        atomic_write_text(out / TABLES / f"{table.name}.{ext}", text)
    links = (f"As CSV: [{TABLES}/{table.name}.csv]({TABLES}/{table.name}.csv), as LaTeX: "
             f"[{TABLES}/{table.name}.tex]({TABLES}/{table.name}.tex).")
    return table.markdown() + [""] + [n for n in table.notes if n] + [links]
