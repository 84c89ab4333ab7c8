"""Reading a pipeline config: YAML in ``config/``, validated into typed objects.

Every problem is reported as one ConfigError naming the file, the key, the value and what is
allowed. Relative paths in a config are resolved against the config file's own folder, so a
config means the same thing from whatever directory it is run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlcd.catalogue import DEFAULT_MAX_RATIO, SUITE_CHECKS, SUITES
from mlcd.config.model import PipelineConfig, SuiteConfig
from mlcd.errors import ConfigError


def _resolve(base: Path, location: str) -> str:
    if "://" in location or os.path.isabs(location):
        return location
    return os.path.normpath(str(base / location))


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Walk the model classes along ``loc`` to list the keys allowed where a bad key stood."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _describe(error: Mapping[str, Any], path: str) -> str:
    loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
    key = ".".join(str(p) for p in loc) or "(top level)"
    if not key.isprintable():  # a key with a newline or a control character
        key = key.encode("unicode_escape").decode("ascii")
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(PipelineConfig, loc[:-1])
        hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"{path}: unknown key '{key}'{hint}"
    if error["type"] == "missing":
        return f"{path}: missing required key '{key}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    value = error.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    if not loc:  # a check across keys: its message names them
        return f"{path}: {message}{shown}"
    return f"{path}: '{key}': {message}{shown}"


def parse_config(data: Any, path: str, base: Path) -> PipelineConfig:
    """Validate a mapping into a PipelineConfig; paths resolved against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the config must be a YAML mapping of keys, got {type(data).__name__}"
        )
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _describe(errors[0], path)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise ConfigError(first + more) from None
    except (TypeError, AttributeError) as exc:
        # pydantic reports a validator's ValueError, not these: braces in source.path such as
        # {date[0]} or {date.foo} raise them when the date is filled in.
        source = data.get("source")
        if isinstance(source, dict) and "{" in str(source.get("path")):
            raise ConfigError(
                f"{path}: 'source.path': {source.get('path')!r}: braces may only hold the run "
                f"date, as {{date}} or {{date:%Y/%m/%d}} (any strftime format); here: {exc}"
            ) from None
        raise ConfigError(f"{path}: a value cannot be used: {exc}") from None
    updates: dict[str, Any] = {
        "workspace": _resolve(base, cfg.workspace),
        "publish": _resolve(base, cfg.publish),
    }
    if cfg.source.path is not None:
        updates["source"] = cfg.source.model_copy(update={"path": _resolve(base, cfg.source.path)})
    monitor = cfg.monitor
    if monitor.log is not None or monitor.labels is not None:  # mlcd monitor's inputs
        updates["monitor"] = monitor.model_copy(
            update={
                "log": None if monitor.log is None else _resolve(base, monitor.log),
                "labels": None
                if monitor.labels is None
                else monitor.labels.model_copy(
                    update={"path": _resolve(base, monitor.labels.path)}
                ),
            }
        )
    cfg = cfg.model_copy(update=updates)
    from mlcd.storage import check_location

    for key, location in (
        ("source.path", cfg.source.path),
        ("workspace", cfg.workspace),
        ("publish", cfg.publish),
    ):
        if location is not None:
            try:
                check_location(location)
            except ConfigError as exc:
                raise ConfigError(f"{path}: '{key}': {exc}") from None
    check_estimator(cfg, path)

    try:
        check_suite_names(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read and validate a pipeline config; raise ConfigError naming what is wrong."""
    file = Path(path)
    try:
        stat = file.stat()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {str(path)!r}: {exc.strerror}. Pass an existing YAML file "
            "with --config (the default is config/pipeline.yaml)"
        ) from None
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return _load_cached(str(file.resolve()), key, str(path))


@functools.lru_cache(maxsize=32)
def _load_cached(resolved: str, _stat: tuple[int, ...], shown: str) -> PipelineConfig:
    try:
        text = Path(resolved).read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: not valid YAML: {exc}".replace("\n", " ")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text; save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read config {shown!r}: {exc.strerror or exc}. Pass a readable YAML file "
            "with --config"
        ) from None
    return parse_config(data, shown, Path(resolved).parent)


def check_estimator(cfg: PipelineConfig, path: str) -> None:
    """Build the configured estimator once, so a typo fails before anything runs."""
    from mlcd.config import check_spec

    for name, spec in cfg.models().items():
        where = "model" if cfg.candidates is None else f"candidates[{name}]"
        try:
            check_spec(spec, where)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}".replace("\n", "\\n")) from None
        except TypeError as exc:  # e.g. a Pipeline step whose name is not text
            raise ConfigError(
                f"{path}: '{where}': {spec.estimator} cannot be built from its params: {exc}"
            ) from None
        except ValidationError as exc:  # a nested {estimator, params} mapping of the wrong shape
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"])
            raise ConfigError(
                f"{path}: '{where}.params': a nested estimator's '{key}': {error['msg']} "
                f"(got {error.get('input')!r}); a nested estimator is a mapping "
                "{estimator: import.path, params: {...}}"
            ) from None


def check_suite_names(cfg: PipelineConfig) -> None:
    """Every check named in the validation section must exist in its suite."""
    for suite in SUITES:
        section: SuiteConfig = getattr(cfg.validation, suite)
        for key in ("blocking", "known_broken", "skip"):
            for name in getattr(section, key) or []:
                if name not in SUITE_CHECKS[suite]:
                    raise ConfigError(
                        f"validation.{suite}.{key}: unknown check {name!r}; the {suite} suite has: "
                        f"{', '.join(SUITE_CHECKS[suite])}"
                    )
        for name, ratio in section.max_ratio.items():
            if name not in DEFAULT_MAX_RATIO[suite]:
                allowed = ", ".join(DEFAULT_MAX_RATIO[suite]) or "none in this suite"
                raise ConfigError(
                    f"validation.{suite}.max_ratio: {name!r} is not a check judged on a ratio; "
                    f"allowed: {allowed}"
                )
            if not 0 <= ratio <= 1:
                raise ConfigError(
                    f"validation.{suite}.max_ratio.{name}: {ratio} is not a ratio between 0 and 1"
                )
