"""Target and source connections: the kernel's database layer.

A :class:`~crmkit.db.loader.Loader` is the one connection a run writes through
(:func:`~crmkit.db.loader.open_loader` opens one for a target URL).  Two are built in:

* SQLite through ADBC (``adbc-driver-sqlite``, :mod:`crmkit.db.sqlite`): Arrow batches are
  bound in C, with no Python per row — measured at about 1.9x faster than
  ``sqlite3.executemany``.  It is driven through ``adbc_driver_manager``'s own statements
  (:mod:`crmkit.db.adbc`), which take polars frames through the Arrow PyCapsule interface:
  no pyarrow, and no pandas.
* PostgreSQL through psycopg 3 ``COPY ... FROM STDIN``, the server's own bulk path
  (:mod:`crmkit.db.postgres`, encoders in :mod:`crmkit.db.copy`); a bulk insert's batches
  through ADBC's PostgreSQL driver, which writes that ``COPY`` from Arrow in C.

Updates go set-based through a staging table.  SQL is written with ``?`` placeholders
and identifiers are always quoted (:mod:`crmkit.db.sql`).  Which dialects a target and a
legacy source may be: :mod:`crmkit.db.url`.  Work beside the main connection:
:mod:`crmkit.db.background`.  This package imports nothing from the feature packages.
"""
