"""Pareto fronts, hypervolumes and tables (pure functions of records), Plotly figures and the
HTML report. May import the results store (``harness.distributed.store``), the record
(``harness.protocol.records``) and ``harness.core``."""
