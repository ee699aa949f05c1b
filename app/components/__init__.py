"""Rendering, by widget group: ``frame`` (guarded service calls, banners, sidebar), ``params``
(URL-bound widgets), ``maps``, ``charts`` and ``tables``, and one module of parts per page
that has its own (``risk_map``, ``drilldown``, ``what_if``, ``planner``, ``model_health``,
``data_health``, ``briefing``).

Components take typed results from ``app.services`` and draw them; they never query the
warehouse themselves (the hex picker asks ``app.services.drilldown`` for street matches).
"""
