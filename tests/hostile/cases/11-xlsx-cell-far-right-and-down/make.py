"""A named sheet with a stray value far right and down."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for ref, value in {"A1": "id", "B1": "name", "C1": "mail", "A2": "1", "B2": "Ann", "C2": "a@x.org"}.items():
        ws[ref] = value
    ws.title = "Data"
    ws["ZZ100000"] = 0
    wb.save(project / "book.xlsx")
