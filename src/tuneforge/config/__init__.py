"""Configuration: schema (one dataclass per concern), parsing (YAML, key=value, --flags) and validation."""

from tuneforge.config.parse import Config, build_config, parse_args, split_argv
from tuneforge.config.schema import GROUPS, field_map
from tuneforge.config.validate import validate

__all__ = ["Config", "GROUPS", "build_config", "field_map", "parse_args", "split_argv", "validate"]
