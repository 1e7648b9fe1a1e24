"""Simulation studies: convergence-rate experiments, their store, executors and plots."""
