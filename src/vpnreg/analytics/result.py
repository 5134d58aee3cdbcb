"""A query's answer (named columns, rows) and its renderings: an aligned table, CSV, JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from enum import StrEnum


class OutputFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


@dataclass(frozen=True)
class Result:
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]

    def render(self, kind: OutputFormat) -> str:
        if kind is OutputFormat.CSV:
            return self.csv()
        if kind is OutputFormat.JSON:
            return self.json()
        return self.table()

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        writer.writerows([[_cell(v) for v in row] for row in self.rows])
        return out.getvalue()

    def json(self) -> str:
        """One JSON array of objects, one per row (dates as YYYY-MM-DD, missing values null)."""
        objects = [
            {c: _json_value(v) for c, v in zip(self.columns, row, strict=True)} for row in self.rows
        ]
        return json.dumps(objects, indent=1) + "\n"

    def table(self) -> str:
        cells = [list(self.columns), *([_cell(v) or "-" for v in row] for row in self.rows)]
        widths = [max(len(line[i]) for line in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
        if not self.rows:
            lines.append("(no rows)")
        return "\n".join(line.rstrip() for line in lines) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _cell(value)
