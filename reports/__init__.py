"""Pareto fronts, tables and Plotly reports (built in the reports issue)."""
