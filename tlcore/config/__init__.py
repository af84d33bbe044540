"""The run config, declared once: schema, form wording, links, presets and overrides.

`schema` declares every field on typed, frozen models and reads them back
(`field_specs`, the one reader: patch `tlcore.config.schema.field_specs` to change
the declaration everywhere); `fieldspec` describes one field, `form` checks a
form field by field, `links` turns a config into a `?cfg=` token and back,
`presets` names starting points, `overrides` parses `--set key=value`, and
`advice` warns about values that tend to go wrong.
"""

from tlcore.config.fieldspec import Allowed, FieldSpec, FieldType
from tlcore.config.form import field_errors
from tlcore.config.links import LINK_MAX_CHARS, changed_settings, from_link_token, link_token
from tlcore.config.overrides import flatten, parse_value
from tlcore.config.presets import DEFAULT_PRESET, PRESETS, SCRATCH_TRAIN, preset
from tlcore.config.schema import (
    SECTIONS,
    TOP_LEVEL,
    AugmentConfig,
    BaseConfig,
    FineTuneConfig,
    HeadConfig,
    RunConfig,
    TrainConfig,
    WeightsKind,
    WeightsSource,
    apply_overrides,
    field_spec,
    field_specs,
    markdown_table,
)

__all__ = [
    "DEFAULT_PRESET",
    "LINK_MAX_CHARS",
    "PRESETS",
    "SCRATCH_TRAIN",
    "SECTIONS",
    "TOP_LEVEL",
    "Allowed",
    "AugmentConfig",
    "BaseConfig",
    "FieldSpec",
    "FieldType",
    "FineTuneConfig",
    "HeadConfig",
    "RunConfig",
    "TrainConfig",
    "WeightsKind",
    "WeightsSource",
    "apply_overrides",
    "changed_settings",
    "field_errors",
    "field_spec",
    "field_specs",
    "flatten",
    "from_link_token",
    "link_token",
    "markdown_table",
    "parse_value",
    "preset",
]
