"""The MLflow store, the report's only source: reading runs, histories, sweeps and predictions
(`load` and the modules it uses), logging the built report back as artifacts (`attach`), and
naming the store and runs the way a shared report may show them (`names`)."""
