"""MLflow: one run per training, the registered model ``vision-zero-risk`` and its aliases.

One module a job: ``store`` (the client, names and artifact layout every job shares),
``tracking`` (the experiment, logging a training run, registering its version), ``promotion``
(the rule that moves ``@champion`` and ``@challenger``) and ``loading`` (a registered model, the
list of versions, and a run's backtest table and SHAP summary for the app). The package
re-exports nothing: callers import the module of the job they need.

**One persistence path.** The crash booster is stored once, with MLflow's LightGBM flavour: the
logged model is what each registered version points to, so ``@champion``/``@challenger`` and
versions resolve as MLflow's own tools expect. Everything else a ``RiskModel`` is (thresholds,
dispersion, feature names, parameters, the injury booster) goes to the run's ``risk_model/``
folder without a second copy of the crash booster; loading reads the folder and hands it the
flavour's booster. (Logging the whole folder as a pyfunc instead would drop the flavour;
keeping both, as before, stored the booster twice and had to compare them on load.)

Every call takes the tracking URI explicitly and works through an ``MlflowClient``; nothing
sets a process-wide tracking URI at import. MLflow is imported inside the functions (it takes
seconds to import; the app's map path never needs it).
"""
