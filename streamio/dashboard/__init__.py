"""The live dashboard and the Prometheus exporter of a job.

``StreamingContext(..., dashboard=8050)`` serves the dashboard on 127.0.0.1
from the context's own task group; ``ssc.dashboard_app()`` gives it as an ASGI
app to mount in an application's own server, ``ssc.metrics_app()`` the
Prometheus exporter alone. ``stream.to_dashboard(title, kind=...)`` shows a
stream's batches on the page.

The modules: :mod:`.monitor` (what the dashboard knows, fed by listener events),
:mod:`.panels` (``to_dashboard``), :mod:`.graph_view` (the graph as drawn); they
need nothing beyond the core install. :mod:`.app` (Starlette), :mod:`.server`
(Hypercorn) and :mod:`.exporter` (``prometheus-client``) need the extras, loaded
through :func:`load` so that a missing one says what to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import ConfigurationError

__all__ = ["load"]

# The extra that brings the packages each module imports.
_EXTRAS = {"app": "dashboard", "server": "dashboard", "exporter": "metrics"}


def load(module: str) -> ModuleType:
    """Import ``streamio.dashboard.<module>``, or say which extra is missing.

    Raises:
        ConfigurationError: when a package it needs is not installed.
    """
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as exc:
        extra = _EXTRAS[module]
        msg = (
            f"the {'dashboard' if extra == 'dashboard' else 'metrics exporter'} needs "
            f"{exc.name}: pip install 'streamio[{extra}]'"
        )
        raise ConfigurationError(msg) from exc
