"""pmoe: multi-dataset 3D point-cloud learning with Mixture-of-Experts."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`pmoe_core.predict` / `pmoe_core.load_predictor` (label a point cloud from a notebook), imported on first use
    so that `import pmoe_core` stays light (no torch)."""
    if name in ("predict", "load_predictor", "Prediction", "PredictOptions"):
        from pmoe_core.engine import predict as module

        return getattr(module, name)
    raise AttributeError(f"module 'pmoe_core' has no attribute {name!r}")
