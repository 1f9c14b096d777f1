"""Scenario configuration: pydantic schema, YAML loading and ``--set`` overrides."""

from rlsim.config.loader import LoadedScenario, apply_overrides, load_scenario, read_yaml, scenario_from_dict
from rlsim.config.scenario import (
    AdaptiveKConfig,
    SpeculativeConfig,
    ClusterConfig,
    CpuOverheadConfig,
    EngineConfig,
    ModelConfig,
    RolloutConfig,
    Scenario,
    SimulationConfig,
)

__all__ = [
    "AdaptiveKConfig",
    "SpeculativeConfig",
    "ClusterConfig",
    "CpuOverheadConfig",
    "EngineConfig",
    "LoadedScenario",
    "ModelConfig",
    "RolloutConfig",
    "Scenario",
    "SimulationConfig",
    "apply_overrides",
    "load_scenario",
    "read_yaml",
    "scenario_from_dict",
]
