"""One value at the sheet's last cell."""

from pathlib import Path


def make(project: Path, outside: Path) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    for ref, value in {"A1": "id", "B1": "name", "C1": "mail", "A2": "1", "B2": "Ann", "C2": "a@x.org"}.items():
        ws[ref] = value
    ws["XFD1048576"] = "far away"
    wb.save(project / "book.xlsx")
