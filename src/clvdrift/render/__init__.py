"""Rendering: charts and pages from results already computed (plain dicts, typed results), no logic.

- :mod:`clvdrift.render.replay_chart`: the replay's SVG chart and its HTML page.

Rendering imports no layer of the library (only :mod:`clvdrift.errors`, :mod:`clvdrift.io` and
:mod:`clvdrift.jsonable`): the pipeline calls it to write a replay's chart, adapters to draw pages.
"""
