"""Excel's escape for NUL in a cell."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for ref, value in {"A1": "id", "B1": "name", "C1": "mail", "A2": "1", "B2": "Ann", "C2": "a@x.org"}.items():
        ws[ref] = value
    ws["A3"], ws["B3"], ws["C3"] = "2", "B_x0000_b", "b@x.org"
    wb.save(project / "book.xlsx")
