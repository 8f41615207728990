"""Routing analysis of Point-MoE models (`pmoe route-inspect`): which expert every point goes to, and why.

scenes.py (scene specs) -> traces.py (forward with the routing recorder, tokens mapped back to all points) ->
stats.py / information.py / consistency.py (per-layer metrics) -> export.py (HDF5 traces, coloured PLYs),
plots.py, projection.py, report.py (JSON, schemas/routing_report.schema.json); run.py drives them all
(`route_inspect(RouteInspectConfig(...))`). Kept import-light: import the module you need.
"""
