"""Layer 1, the schema and generic checks: what a row is (``schema``: the 13 features, 5
targets, oracle columns, splits), what a link may physically be (``domain``, ``links``), the
argument rules every parameter is checked by (``validation``), file IO (atomic writes, sha256,
format-checked JSON, Parquet/JSON rows), paths, the machine, regression metrics and the
figures' style. It imports nothing from the other layers."""
