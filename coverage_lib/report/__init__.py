"""Layer 7, the report: what the book shows from the evaluation's results: tables, figures,
the sentences worded from the numbers (``verdicts``), the seeds' tables and the interactive
page's widgets."""
