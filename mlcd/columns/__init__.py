"""Column roles and the preprocessing built from them (docs/columns.md)."""

from mlcd.columns.prepare import final_step, is_pipeline, prepared_names, wrap
from mlcd.columns.roles import (
    check_override,
    describe,
    features,
    infer_role,
    infer_roles,
    of_role,
)

__all__ = [
    "check_override",
    "describe",
    "features",
    "final_step",
    "infer_role",
    "infer_roles",
    "is_pipeline",
    "of_role",
    "prepared_names",
    "wrap",
]
