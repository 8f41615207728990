"""pmoe: multi-dataset 3D point-cloud learning with Mixture-of-Experts."""

__version__ = "0.1.0"
