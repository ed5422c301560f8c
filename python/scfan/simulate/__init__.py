"""Simulated data with known truth (genome, TF sites, bulk lines, single cells) for end-to-end runs and tests."""

from scfan.simulate.config import PRESETS, SimulationConfig, make_config
from scfan.simulate.run import run_simulation

__all__ = ["PRESETS", "SimulationConfig", "make_config", "run_simulation"]
