"""Runtime settings of the pipeline (environment and TOML), shared by every layer that needs them."""
