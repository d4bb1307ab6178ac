"""Pipeline stages: one module per stage, each a plain function a Python user can call."""
