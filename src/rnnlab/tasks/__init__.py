"""Tasks: each brings its data, its model and its metrics to the shared training loop."""
