"""Budgeted Optuna search over methods and hyperparameters; the Optuna storage is the run store."""
