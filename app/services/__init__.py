"""Typed, cached reads for the pages, one module per page; ``overview`` holds what every page
shares (the warehouse and model, ``Unavailable``, the data overview, reasons, areas).

Rules of this package:

- Public functions read the settings and return typed results (dataclasses, or frames with
  the columns their docstring names). They raise :class:`overview.Unavailable` when something
  the page needs is missing, with the command that fixes it; anything else is a bug or a
  failed service, which ``app.components.frame.load`` logs and reports without a traceback.
- ``st.cache_data`` functions (frames) and ``st.cache_resource`` functions (engine, model)
  depend only on their arguments: the database URL and resolution are passed in explicitly.
- The map path reads only the warehouse. Model code (LightGBM, MLflow, SHAP) is imported
  inside the functions that need it, so a page that does not call them never loads it.
- Page modules call the shared services through the module (``overview.registered_model``),
  so there is one place to replace them.
"""
