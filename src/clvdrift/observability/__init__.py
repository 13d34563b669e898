"""Metrics and logs of clvdrift: a shared module, usable from any layer, importing none.

:mod:`clvdrift.observability.metrics` turns the store's run history into Prometheus series;
:mod:`clvdrift.observability.logging` is the one structured log format.
"""
