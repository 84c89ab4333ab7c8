"""The bad-input catalogue: configs, data, registry damage, a hostile environment and odd names,
each fed to the real ``mlcd`` process. Every case must end with a documented exit code, one
``mlcd: <kind>: ...`` line naming the problem and no traceback, and leave the registry (the
version in production, its pointer and every version folder) byte for byte as it was.

One published baseline (two versions, the second in production; deepchecks suites off, so it
takes seconds) is copied for each case. docs/faults.md, "Bad input", lists what each case says.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mlcd import errors, registry
from mlcd.config import PipelineConfig, load_config, parse_config
from tests.conftest import (
    MLCD,
    ROOT,
    csv_config,
    evil_pickle,
    production,
    run_json,
    run_mlcd,
    set_model_params,
    versions,
)
from tests.test_serving import Service

pytestmark = pytest.mark.e2e

MODEL = "breast-cancer"
BASE_PARAMS = {"n_estimators": 200, "max_depth": 8, "random_state": 42, "n_jobs": 1}
# A model the baseline has not trained: a run of it would publish and promote a new version.
CHANGED_PARAMS = {**BASE_PARAMS, "n_estimators": 100}
NEXT_DATE = "2026-01-17"

# Every kind of problem mlcd reports, with its exit code (README "Exit codes").
KINDS: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.MlcdError) and cls is not errors.MlcdError
}
PROBLEM_LINE = re.compile("^mlcd: ({}): ".format("|".join(map(re.escape, KINDS))))


# --- the baseline and its copies ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Site:
    """A copy of the baseline: config, CSV source, workspace and registry in ``folder``."""

    folder: Path
    first: str  # the older version
    second: str  # the version in production

    @property
    def config(self) -> Path:
        return self.folder / "pipeline.yaml"

    @property
    def source(self) -> Path:
        return self.folder / "data.csv"

    @property
    def registry(self) -> Path:
        return self.folder / "registry"

    def version(self, version: str) -> Path:
        return self.registry / MODEL / "versions" / version

    def run(self) -> list[str]:
        return ["run", "--config", str(self.config), "--date", NEXT_DATE]

    def reg(self) -> list[str]:
        return ["--registry", str(self.registry)]

    def edit_config(self, **changes: Any) -> None:
        data = yaml.safe_load(self.config.read_text())
        data.update(changes)
        self.config.write_text(yaml.safe_dump(data, sort_keys=False))


def registry_state(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) of the registry, except the lock file."""
    root = folder / "registry"
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in root.rglob("*")
        if p.name != registry.LOCK_FILE
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """Two runs of the default model on a CSV source, suites off: version one (200 trees),
    then version two (50 trees), which is in production."""
    folder = tmp_path_factory.mktemp("baseline")
    config = csv_config(folder, suites=False)
    set_model_params(config, **BASE_PARAMS)
    code, _, err = run_json(config, date="2026-01-15")
    assert code == 0, err
    first = production(folder / "registry", MODEL)
    set_model_params(config, **{**BASE_PARAMS, "n_estimators": 50})
    code, _, err = run_json(config, date="2026-01-16")
    assert code == 0, err
    second = production(folder / "registry", MODEL)
    assert (
        first and second and sorted(versions(folder / "registry", MODEL)) == sorted([first, second])
    )
    return Site(folder, first, second)


@pytest.fixture
def site(baseline: Site, tmp_path: Path) -> Site:
    target = tmp_path / "site"
    shutil.copytree(baseline.folder, target)
    return dataclasses.replace(baseline, folder=target)


def assert_refused(
    proc: subprocess.CompletedProcess[str], code: int, kind: str, *fragments: str
) -> None:
    """The documented exit code, one line ``mlcd: <kind>: ...`` with ``fragments``, and no
    traceback (progress lines and ``mlcd: warning:`` lines may come too)."""
    assert KINDS[kind] == code, (kind, code)
    assert proc.returncode == code, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    others = [line for line in proc.stderr.splitlines() if line and not line.startswith("mlcd")]
    assert others == [], proc.stderr  # no log noise, no message continued on a second line
    lines = [line for line in proc.stderr.splitlines() if PROBLEM_LINE.match(line)]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"mlcd: {kind}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# --- damage: each applies one bad input to a site and returns the mlcd command to run -----------


def _frame(site: Site) -> pd.DataFrame:
    return pd.read_csv(site.source)


def _write(site: Site, frame: pd.DataFrame) -> None:
    frame.to_csv(site.source, index=False)


def _source_lines(site: Site) -> list[str]:
    return site.source.read_text().splitlines()


def _header_only(site: Site) -> list[str]:
    site.source.write_text(_source_lines(site)[0] + "\n")
    return site.run()


def _empty_file(site: Site) -> list[str]:
    site.source.write_bytes(b"")
    return site.run()


def _no_target(site: Site) -> list[str]:
    _write(site, _frame(site).rename(columns={"target": "label"}))
    return site.run()


def _single_class(site: Site) -> list[str]:
    frame = _frame(site)
    _write(site, frame[frame["target"] == 1])
    return site.run()


def _target_gaps(site: Site) -> list[str]:
    """Rows without a label are dropped and counted by default; refused when asked to."""
    frame = _frame(site)
    frame.loc[[3, 7], "target"] = np.nan
    _write(site, frame)
    site.edit_config(target={"column": "target", "drop_missing": False})
    return site.run()


def _all_nan_feature(site: Site) -> list[str]:
    """An empty column is a constant left out, unless the config names it as a feature."""
    frame = _frame(site).assign(**{"mean texture": np.nan})
    _write(site, frame)
    site.edit_config(features=[c for c in frame.columns if c != "target"])
    return site.run()


def _mixed_types(site: Site) -> list[str]:
    frame = _frame(site)
    frame["mean radius"] = frame["mean radius"].astype(object)
    frame.loc[4, "mean radius"] = "abc"
    _write(site, frame)
    return site.run()


def _duplicated_names(site: Site) -> list[str]:
    lines = _source_lines(site)
    assert lines[0].startswith("mean radius,mean texture,")
    lines[0] = lines[0].replace("mean texture", "mean radius", 1)
    site.source.write_text("\n".join(lines) + "\n")
    return site.run()


def _latin1(site: Site) -> list[str]:
    frame = _frame(site).assign(city="Zürich")
    frame.to_csv(site.source, index=False, encoding="latin-1")
    return site.run()


def _ragged_row(site: Site) -> list[str]:
    lines = _source_lines(site)
    lines[4] += ",1.5"
    site.source.write_text("\n".join(lines) + "\n")
    return site.run()


LARGE_BYTES = 256 * 1024 * 1024


def _very_large(site: Site) -> list[str]:
    """256 MB: the header, then a hole of NUL bytes (a sparse file, like a preallocated or
    crashed copy: no disk space, no write time)."""
    header = _source_lines(site)[0] + "\n"
    with site.source.open("w") as handle:
        handle.write(header)
        handle.truncate(LARGE_BYTES)
    return site.run()


def _missing_file(site: Site) -> list[str]:
    site.source.unlink()
    return site.run()


def _not_parquet(site: Site) -> list[str]:
    shutil.copy(site.source, site.folder / "data.parquet")
    site.edit_config(source={"path": "data.parquet"})
    return site.run()


def _config(**changes: Any) -> Callable[[Site], list[str]]:
    def apply(site: Site) -> list[str]:
        site.edit_config(**changes)
        return site.run()

    return apply


def _config_text(text: bytes) -> Callable[[Site], list[str]]:
    def apply(site: Site) -> list[str]:
        site.config.write_bytes(text)
        return site.run()

    return apply


def _model(**changes: Any) -> dict[str, Any]:
    return {"model": {"estimator": "sklearn.ensemble.RandomForestClassifier", **changes}}


def _changed_model(site: Site) -> None:
    set_model_params(site.config, **CHANGED_PARAMS)


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _evil_everywhere(site: Site) -> None:
    """Every version's model.joblib becomes a pickle that creates ``pwned`` when loaded."""
    for version in (site.first, site.second):
        (site.version(version) / registry.MODEL_FILE).write_bytes(
            evil_pickle(site.folder / "pwned")
        )


def _evil_with_manifest(site: Site) -> None:
    """Production's model.joblib and its manifest swapped together: the manifest matches."""
    folder = site.version(site.second)
    blob = evil_pickle(site.folder / "pwned")
    (folder / registry.MODEL_FILE).write_bytes(blob)
    manifest = json.loads((folder / registry.MANIFEST_FILE).read_text())
    manifest["artifacts"][registry.MODEL_FILE] = {
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
    }
    (folder / registry.MANIFEST_FILE).write_text(json.dumps(manifest))


def _input_csv(site: Site) -> list[str]:
    frame = _frame(site).drop(columns=["target"]).head(20)
    frame.to_csv(site.folder / "in.csv", index=False)
    return ["--input", str(site.folder / "in.csv"), "--output", str(site.folder / "out.csv")]


def _predict(site: Site, *extra: str) -> list[str]:
    return ["predict", MODEL, *_input_csv(site), *extra, *site.reg()]


def _serve(site: Site) -> list[str]:
    return ["serve", MODEL, "--port", "0", *site.reg()]


def _pointer(site: Site) -> Path:
    return site.registry / MODEL / registry.POINTER_FILE


def _log(site: Site) -> Path:
    return site.registry / MODEL / registry.LOG_FILE


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    apply: Callable[[Site], list[str]]  # makes the bad input; returns the mlcd command
    code: int
    kind: str
    fragments: tuple[str, ...] = ()
    damages_registry: bool = False  # the bad input is the registry itself


def _damage(
    damage: Callable[[Site], None], command: Callable[[Site], list[str]]
) -> Callable[[Site], list[str]]:
    def apply(site: Site) -> list[str]:
        damage(site)
        return command(site)

    return apply


def _then_run_changed(site: Site) -> list[str]:
    _changed_model(site)
    return site.run()


CONFIG_CASES = [
    Case("config: unknown key", _config(modle={}), 2, "config error", ("unknown key 'modle'",)),
    Case(
        "config: wrong type",
        _config(split={"test_size": "a lot"}),
        2,
        "config error",
        ("'split.test_size'", "'a lot'"),
    ),
    Case(
        "config: bad estimator path",
        _config(**_model(estimator="sklearn.ensemble.RandomForestClassifer")),
        2,
        "config error",
        ("cannot import 'sklearn.ensemble.RandomForestClassifer'",),
    ),
    Case(
        "config: relative estimator path",
        _config(**_model(estimator="..ensemble.Forest")),
        2,
        "config error",
        ("cannot import '..ensemble.Forest'",),
    ),
    Case(
        "config: nested estimator of the wrong shape",
        _config(
            model={
                "estimator": "sklearn.pipeline.Pipeline",
                "params": {"steps": [["scale", {"estimator": 5}]]},
            }
        ),
        2,
        "config error",
        ("'model.params'", "nested estimator", "'estimator'"),
    ),
    Case(
        "config: unknown metric",
        _config(gates={"thresholds": {"acuracy": {"min": 0.9}}}),
        2,
        "config error",
        ("unknown metric 'acuracy'",),
    ),
    Case(
        "config: unknown check name",
        _config(validation={"data_integrity": {"blocking": ["ConflictingLabel"]}}),
        2,
        "config error",
        ("unknown check 'ConflictingLabel'",),
    ),
    Case(
        "config: {date} template with an index",
        _config(source={"path": "data/{date[0]}.csv"}),
        2,
        "config error",
        ("'source.path'", "braces may only hold the run date"),
    ),
    Case(
        "config: {day} template",
        _config(source={"path": "data/{day}.csv"}),
        2,
        "config error",
        ("braces may only hold the run date",),
    ),
    Case(
        "config: invalid s3 URI",
        _config(publish="s3://Bad_Bucket/registry"),
        2,
        "config error",
        ("'publish'", "not a valid S3 bucket name"),
    ),
    Case(
        "config: model name with '../'",
        _config(name="../escape"),
        2,
        "config error",
        ("model name '../escape'",),
    ),
    Case(
        "config: not YAML",
        _config_text(b"name: [unclosed\n"),
        2,
        "config error",
        ("not valid YAML",),
    ),
    Case(
        "config: a YAML list",
        _config_text(b"- name: x\n"),
        2,
        "config error",
        ("must be a YAML mapping",),
    ),
    Case(
        "config: not UTF-8",
        _config_text("name: caf\u00e9\n".encode("latin-1")),
        2,
        "config error",
        ("not UTF-8",),
    ),
]

DATA_CASES = [
    Case("data: empty file", _empty_file, 4, "data error", ("No columns to parse",)),
    Case("data: header only", _header_only, 4, "data error", ("no rows",)),
    Case(
        "data: missing target column",
        _no_target,
        2,
        "config error",
        ("column 'target' is not in the source data",),
    ),
    Case("data: a single class", _single_class, 4, "data error", ("single class",)),
    Case("data: empty target values", _target_gaps, 4, "data error", ("empty in 2 row(s)",)),
    Case(
        "data: all-NaN feature",
        _all_nan_feature,
        4,
        "data error",
        ("'mean texture'", "entirely empty"),
    ),
    Case(
        "data: text in a numeric column",
        _mixed_types,
        4,
        "data error",
        ("'mean radius' holds numbers and text", "'abc'"),
    ),
    Case(
        "data: duplicated column names",
        _duplicated_names,
        4,
        "data error",
        ("duplicated column names: mean radius",),
    ),
    Case("data: not UTF-8", _latin1, 4, "data error", ("utf-8",)),
    Case("data: ragged row", _ragged_row, 4, "data error", ("Expected 31 fields in line 5",)),
    Case("data: 256 MB of NUL bytes", _very_large, 4, "data error", ("'target' is empty",)),
    Case("data: missing file", _missing_file, 4, "data error", ("does not exist",)),
    Case(
        "data: a Parquet file that is not Parquet",
        _not_parquet,
        4,
        "data error",
        ("as parquet", "magic bytes"),
    ),
]


def _tamper_production(site: Site) -> None:
    _flip_byte(site.version(site.second) / registry.MODEL_FILE)


def _tamper_first(site: Site) -> None:
    _flip_byte(site.version(site.first) / registry.MODEL_FILE)


def _delete_production(site: Site) -> None:
    shutil.rmtree(site.version(site.second))


def _delete_first(site: Site) -> None:
    shutil.rmtree(site.version(site.first))


def _corrupt_pointer(site: Site) -> None:
    _pointer(site).write_text("{not json")


def _pointer_escapes(site: Site) -> None:
    _pointer(site).write_text('{"version": "../../etc"}')


def _torn_log(site: Site) -> None:
    with _log(site).open("a") as handle:
        handle.write('{"at": "2026-01-1')


def _binary_log(site: Site) -> None:
    _log(site).write_bytes(b"\xff\xfe\x00garbage\n")


def _corrupt_manifest(site: Site) -> None:
    (site.version(site.second) / registry.MANIFEST_FILE).write_text("{half")


def _edit_schema(site: Site) -> None:
    (site.version(site.second) / registry.SCHEMA_FILE).write_text('{"features": []}')


def _promote_first(site: Site) -> list[str]:
    return ["models", "promote", MODEL, site.first, "--reason", "catalogue", *site.reg()]


def _rollback(site: Site) -> list[str]:
    return ["models", "rollback", MODEL, "--reason", "catalogue", *site.reg()]


def _show(site: Site) -> list[str]:
    return ["models", "show", MODEL, *site.reg()]


def _history(site: Site) -> list[str]:
    return ["models", "history", MODEL, *site.reg()]


SHA_MISMATCH = "does not match its recorded sha256"
CHANGED_AFTER_PROMOTION = "was changed after its promotion"


def _registry_case(
    id: str,
    damage: Callable[[Site], None],
    command: Callable[[Site], list[str]],
    code: int,
    kind: str,
    *fragments: str,
) -> Case:
    return Case(id, _damage(damage, command), code, kind, fragments, damages_registry=True)


REGISTRY_CASES = [
    _registry_case(
        "registry: tampered model, predict",
        _tamper_production,
        _predict,
        7,
        "storage error",
        SHA_MISMATCH,
        "refuses",
    ),
    _registry_case(
        "registry: tampered model, serve",
        _tamper_production,
        _serve,
        7,
        "storage error",
        SHA_MISMATCH,
    ),
    _registry_case(
        "registry: tampered model, promote",
        _tamper_first,
        _promote_first,
        7,
        "storage error",
        "is damaged",
        "production is unchanged",
    ),
    _registry_case(
        "registry: evil pickle, rollback",
        _evil_everywhere,
        _rollback,
        7,
        "storage error",
        SHA_MISMATCH,
        "not promoted",
    ),
    _registry_case(
        "registry: evil pickle, predict",
        _evil_everywhere,
        _predict,
        7,
        "storage error",
        SHA_MISMATCH,
    ),
    _registry_case(
        "registry: evil pickle and manifest, predict",
        _evil_with_manifest,
        _predict,
        7,
        "storage error",
        CHANGED_AFTER_PROMOTION,
    ),
    _registry_case(
        "registry: evil pickle and manifest, predict --version",
        _evil_with_manifest,
        lambda site: _predict(site, "--version", site.second),
        7,
        "storage error",
        CHANGED_AFTER_PROMOTION,
    ),
    _registry_case(
        "registry: evil pickle and manifest, show",
        _evil_with_manifest,
        _show,
        7,
        "storage error",
        "changed after the promotion",
    ),
    _registry_case(
        "registry: evil pickle and manifest, run (champion gate)",
        _evil_with_manifest,
        _then_run_changed,
        7,
        "storage error",
        "ValidateModel",
        CHANGED_AFTER_PROMOTION,
    ),
    _registry_case(
        "registry: production version deleted, show",
        _delete_production,
        _show,
        7,
        "storage error",
        "not in the registry",
    ),
    _registry_case(
        "registry: production version deleted, run",
        _delete_production,
        _then_run_changed,
        7,
        "storage error",
        "ValidateModel",
        "has no manifest",
    ),
    _registry_case(
        "registry: earlier version deleted, rollback",
        _delete_first,
        _rollback,
        8,
        "not found",
        "no longer in the registry",
    ),
    _registry_case(
        "registry: earlier version deleted, promote",
        _delete_first,
        _promote_first,
        8,
        "not found",
        "has no version",
    ),
    _registry_case(
        "registry: corrupt production.json, show",
        _corrupt_pointer,
        _show,
        7,
        "storage error",
        "production.json",
        "corrupted",
    ),
    _registry_case(
        "registry: corrupt production.json, serve",
        _corrupt_pointer,
        _serve,
        7,
        "storage error",
        "corrupted",
    ),
    _registry_case(
        "registry: corrupt production.json, run",
        _corrupt_pointer,
        _then_run_changed,
        7,
        "storage error",
        "ValidateModel",
        "corrupted",
    ),
    _registry_case(
        "registry: production.json names '../../etc'",
        _pointer_escapes,
        _predict,
        7,
        "storage error",
        "no valid 'version'",
    ),
    _registry_case(
        "registry: torn line in promotions.jsonl",
        _torn_log,
        _history,
        7,
        "storage error",
        "line 3 is not valid JSON",
        "production is unaffected",
    ),
    _registry_case(
        "registry: binary promotions.jsonl",
        _binary_log,
        _history,
        7,
        "storage error",
        "line 1 is not valid JSON",
    ),
    _registry_case(
        "registry: corrupt manifest.json",
        _corrupt_manifest,
        _predict,
        7,
        "storage error",
        "manifest.json",
        "not valid JSON",
    ),
    _registry_case(
        "registry: edited schema.json",
        _edit_schema,
        _predict,
        7,
        "storage error",
        "schema.json",
        SHA_MISMATCH,
    ),
]


def _train_folder_is_a_file(site: Site) -> list[str]:
    shutil.rmtree(site.folder / "workspace" / "train")
    (site.folder / "workspace" / "train").write_text("a file where a folder should be\n")
    return _then_run_changed(site)


ENVIRONMENT_CASES = [
    Case(
        "environment: a file where the workspace needs a folder",
        _train_folder_is_a_file,
        7,
        "storage error",
        ("TrainModel", "cannot write", "Not a directory"),
    ),
]


def _command(*args: str) -> Callable[[Site], list[str]]:
    def apply(site: Site) -> list[str]:
        return [a.replace("{config}", str(site.config)) for a in args] + (
            ["--registry", str(site.registry)] if args[0] in ("models", "predict", "serve") else []
        )

    return apply


INVALID = "is not valid"
SECURITY_CASES = [
    Case(
        "names: " + " ".join(args).encode("unicode_escape").decode(),
        _command(*args),
        code,
        kind,
        (fragment,),
    )
    for args, code, kind, fragment in [
        (("models", "show", "../etc"), 2, "usage error", "model name '../etc' " + INVALID),
        (("models", "show", f"{MODEL}:../../x"), 2, "usage error", "version '../../x' " + INVALID),
        (("models", "show", f"{MODEL}/../{MODEL}"), 2, "usage error", INVALID),
        (("models", "show", "breast\ncancer"), 2, "usage error", INVALID),
        (("models", "show", ""), 2, "usage error", "model name '' " + INVALID),
        (("models", "history", ".."), 2, "usage error", "model name '..' " + INVALID),
        (("models", "promote", MODEL, "../x", "--reason", "r"), 2, "usage error", INVALID),
        (("models", "promote", "../../tmp", "x", "--reason", "r"), 2, "usage error", INVALID),
        (("models", "rollback", MODEL, "--to", "x;rm", "--reason", "r"), 2, "usage error", INVALID),
        (("predict", "../x", "--input", "a.csv", "--output", "b.csv"), 2, "usage error", INVALID),
        (("serve", "%2e%2e"), 2, "usage error", INVALID),
        # Run ids are looked up among the runs listed in the workspace, never used as a path.
        (("runs", "show", "../../etc/passwd", "--config", "{config}"), 8, "not found", "no run"),
        (("lineage", "../x", "--config", "{config}"), 8, "not found", "is neither a run"),
        (("lineage", f"{MODEL}:../x", "--config", "{config}"), 2, "usage error", INVALID),
        (("lineage", "../x:abc", "--config", "{config}"), 2, "usage error", INVALID),
        (("reproduce", "../x", "--config", "{config}"), 8, "not found", "is neither a run"),
    ]
]

CASES = CONFIG_CASES + DATA_CASES + REGISTRY_CASES + ENVIRONMENT_CASES + SECURITY_CASES


def test_the_catalogue_has_at_least_30_cases():
    assert len({case.id for case in CASES}) == len(CASES) >= 30


def test_control_the_changed_model_is_published_when_nothing_is_wrong(site: Site):
    """The cases that run a changed model would have moved production: here it does."""
    _changed_model(site)
    code, report, err = run_json(site.config, date=NEXT_DATE)
    assert code == 0, err
    assert production(site.registry, MODEL) not in (site.first, site.second)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_in_one_line_and_production_is_untouched(
    baseline: Site, site: Site, case: Case
):
    command = case.apply(site)
    before = registry_state(site.folder)
    if not case.damages_registry:
        assert before == registry_state(baseline.folder)
    proc = run_mlcd(*command, cwd=site.folder, timeout=120)
    assert_refused(proc, case.code, case.kind, *case.fragments)
    assert registry_state(site.folder) == before
    assert not (site.folder / "pwned").exists(), "a tampered model was unpickled"
    assert not (site.folder / "out.csv").exists()


# --- the environment: a full disk, a read-only registry ------------------------------------------

FILE_SIZE_LIMIT = 100_000  # bytes: a model of 100 trees is about 320 kB


def _limit_file_size() -> None:
    # Without SIG_IGN the kernel kills the process with SIGXFSZ; ignored, the write fails with
    # EFBIG ("File too large"), as a write to a full disk fails with ENOSPC.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def test_disk_full_during_a_run_is_a_storage_error_and_production_is_untouched(site: Site):
    _changed_model(site)
    before = registry_state(site.folder)
    proc = subprocess.run(
        [MLCD, *site.run()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    assert_refused(proc, 7, "storage error", "TrainModel", "cannot write", "File too large")
    assert registry_state(site.folder) == before
    leftovers = [p for p in (site.folder / "workspace").rglob(".*") if p.is_file()]
    assert leftovers == [], leftovers  # no half-written temporary file


def _private_mounts_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_read_only_registry_is_a_storage_error_and_production_is_untouched(site: Site):
    """Not root: the model's folder is chmod 0o555. Root ignores that, so the registry is
    bind-mounted read-only in a private mount namespace (``unshare --mount``) for mlcd alone."""
    _changed_model(site)
    before = registry_state(site.folder)
    model_dir = site.registry / MODEL
    if os.geteuid() != 0:
        folders = [model_dir, model_dir / "versions"]
        for folder in folders:
            folder.chmod(0o555)
        try:
            proc = run_mlcd(*site.run(), timeout=300)
        finally:
            for folder in folders:
                folder.chmod(0o755)
        problem = "Permission denied"
    elif _private_mounts_work():
        script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
        proc = subprocess.run(
            ["unshare", "--mount", "sh", "-c", script, "sh", str(site.registry), MLCD, *site.run()],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        problem = "Read-only file system"
    else:
        pytest.skip("root without unshare: no way to make a folder read-only here")
    assert_refused(proc, 7, "storage error", "PublishModel", problem)
    assert registry_state(site.folder) == before


# --- what listens where ------------------------------------------------------------------------


def test_luigid_make_target_binds_loopback_only():
    proc = subprocess.run(
        ["make", "-n", "luigid"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if "luigid" in line.split()[0]]
    argv = shlex.split(line)
    assert argv[argv.index("--address") + 1] == "127.0.0.1", line


def _listening_addresses(port: int) -> list[str]:
    """The local addresses of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # LISTEN
                found.append(address)
    return found


def test_serve_listens_on_loopback_by_default(baseline: Site, tmp_path: Path):
    service = Service(baseline.registry, tmp_path / "serve.log")  # no --host
    try:
        assert service.request("GET", "/health")[0] == 200
        assert _listening_addresses(service.port) == ["0100007F"], service.log()  # 127.0.0.1
    finally:
        assert service.stop() == 0


# --- the config loader, on arbitrary input (property-based) --------------------------------------

CONFIG_KEYS = sorted(
    {
        *PipelineConfig.model_fields,
        *("dataset", "path", "format", "test_size", "seed", "stratify", "estimator", "params"),
        *("metric", "average", "positive_label", "enabled", "blocking", "known_broken", "skip"),
        *("n_samples", "thresholds", "champion", "min", "max", "tolerance", "data_integrity"),
        *("train_test", "model_evaluation", "steps", "n_estimators", "random_state", "C"),
    }
)
ODD_STRINGS = [
    "",
    "../x",
    "x/../../y",
    "s3://",
    "s3://Bad_Bucket/k",
    "ftp://host/x",
    "data/{date}.csv",
    "data/{date[0]}.csv",
    "data/{date.foo}.csv",
    "data/{0}.csv",
    "data/{.csv",
    "data.parquet",
    "sklearn.ensemble.RandomForestClassifier",
    "sklearn.linear_model.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.",
    "..ensemble.Forest",
    "builtins.dict",
    "breast_cancer",
    "classification",
    "regression",
    "accuracy",
    "rmse",
    "ConflictingLabels",
    "macro",
    "\x00",
    "\n",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
)
KEYS = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=6), st.integers(), st.none())
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=8,
)
VALID: dict[str, Any] = {
    "name": "fuzz",
    "task": "classification",
    "source": {"path": "data/{date}.csv"},
    "target": "target",
    "features": ["a", "b"],
    "split": {"test_size": 0.25, "seed": 1, "stratify": True},
    "model": {
        "estimator": "sklearn.pipeline.Pipeline",
        "params": {
            "steps": [
                ["scale", {"estimator": "sklearn.preprocessing.StandardScaler"}],
                ["model", {"estimator": "sklearn.linear_model.LogisticRegression"}],
            ]
        },
    },
    "evaluation": {"average": "macro", "positive_label": 1},
    "validation": {"data_integrity": {"enabled": False, "blocking": ["ConflictingLabels"]}},
    "gates": {"thresholds": {"accuracy": {"min": 0.5}}, "champion": {"metric": "f1"}},
    "workspace": "ws",
    "publish": "s3://mlcd-fuzz/registry",
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every node of ``value`` (its keys and list indexes), the root included."""
    children: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    return [prefix] + [p for key, child in children for p in _paths(child, (*prefix, key))]


# A value that is wrong in a way the loader might not expect, where some key expects another.
ODD_VALUES = [
    *ODD_STRINGS,
    {"estimator": 5},
    {"estimator": "sklearn.x.Y", "params": 3},
    {"estimator": "..ensemble.Forest"},
    [["step"]],
    [["step", {"estimator": None}]],
    {"min": None},
    {"min": "0.5"},
    -1,
    0,
    1e308,
    float("nan"),
    True,
    [],
    {},
]
VALUES = st.one_of(st.sampled_from(ODD_VALUES), JUNK)
# A change of a valid config: at a path of it, replace the value, drop it, or add a key/item.
MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(_paths(VALID)), st.sampled_from(["replace", "drop", "add"]), VALUES, KEYS
    ),
    min_size=1,
    max_size=3,
)


def _mutate_at(node: Any, path: tuple[Any, ...], action: str, value: Any, key: Any) -> Any:
    if path:
        head, rest = path[0], path[1:]
        if isinstance(node, dict) and head in node:
            if action == "drop" and not rest:
                return {k: v for k, v in node.items() if k != head}
            return {**node, head: _mutate_at(node[head], rest, action, value, key)}
        if isinstance(node, list) and isinstance(head, int) and head < len(node):
            if action == "drop" and not rest:
                return node[:head] + node[head + 1 :]
            return [
                _mutate_at(v, rest, action, value, key) if i == head else v
                for i, v in enumerate(node)
            ]
        # An earlier change removed the rest of the path: change the node where it ends.
    if action == "add" and isinstance(node, dict):
        return {**node, key: value}
    if action == "add" and isinstance(node, list):
        return [*node, value]
    return value


def _mutated(mutations: list[tuple[tuple[Any, ...], str, Any, Any]]) -> Any:
    config: Any = VALID
    for path, action, value, key in mutations:
        config = _mutate_at(config, path, action, value, key)
    return config


def _loads_or_config_error(load: Callable[[], PipelineConfig]) -> None:
    try:
        load()
    except errors.ConfigError as exc:
        assert "\n" not in str(exc), str(exc)  # one line


FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)


def test_config_parser_loads_or_raises_a_config_error_for_mutated_configs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCD_CACHE_DIR", str(tmp_path / "cache"))
    assert isinstance(parse_config(copy.deepcopy(VALID), "fuzz.yaml", tmp_path), PipelineConfig)

    @FUZZ
    @given(MUTATIONS)
    # Each raised something else than ConfigError before it was fixed:
    @example([(("source", "path"), "replace", "data/{date[0]}.csv", None)])  # TypeError
    @example([(("source", "path"), "replace", "data/{date.foo}.csv", None)])  # AttributeError
    @example([(("model", "params", "steps", 0, 1), "replace", {"estimator": 5}, None)])
    @example([(("model", "estimator"), "replace", "..ensemble.Forest", None)])  # TypeError
    @example([(("model", "params", "steps", 0, 0), "replace", None, None)])  # TypeError
    @example([(("model",), "add", 1, "a\nb")])  # a message on two lines
    def check(mutations: list[tuple[tuple[Any, ...], str, Any, Any]]) -> None:
        raw = _mutated(mutations)
        _loads_or_config_error(lambda: parse_config(raw, "fuzz.yaml", tmp_path))

    check()


def test_config_parser_loads_or_raises_a_config_error_for_arbitrary_mappings(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCD_CACHE_DIR", str(tmp_path / "cache"))

    @FUZZ
    @given(st.one_of(JUNK, st.dictionaries(KEYS, JUNK, max_size=10)))
    def check(raw: Any) -> None:
        _loads_or_config_error(lambda: parse_config(raw, "fuzz.yaml", tmp_path))

    check()


def test_config_file_loads_or_raises_a_config_error_for_arbitrary_text(tmp_path, monkeypatch):
    monkeypatch.setenv("MLCD_CACHE_DIR", str(tmp_path / "cache"))

    @FUZZ
    @given(st.one_of(st.text(max_size=200), JUNK.map(lambda v: yaml.safe_dump(v, sort_keys=False))))
    def check(text: str) -> None:
        path = tmp_path / f"{uuid.uuid4().hex}.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _loads_or_config_error(lambda: load_config(path))

    check()
