"""Policy backends, value models, the tiny bootstrap model and training on TRL / transformers.

Importing this package is cheap: torch and transformers load in the submodules that need them.
"""
