"""Study-level modelling protocols (one module per study of ``config.yaml``)."""
