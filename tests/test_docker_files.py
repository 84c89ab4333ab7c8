"""The Docker deployment (docker/, .dockerignore), checked statically: no Docker engine runs on
our build machines, so these read compose.yaml, the Dockerfiles and .dockerignore and check what
a `docker compose up` would depend on: pinned images, healthchecks and start order, the bucket
the worker writes to, luigi.cfg outside the volumes, and a build context that holds every file
the Dockerfiles copy."""

from __future__ import annotations

import functools
import importlib.util
import json
import posixpath
import re
import shlex
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
UI = DOCKER / "compose.ui.yaml"
ONE_SHOT = {"bucket", "worker"}  # services that run to completion; every other one stays up
MINIO_TAG = re.compile(r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ")
SECRET = re.compile(r"\$\{MLCD_S3_SECRET(?:(:?[-?])([^}]*))?\}")


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


# --- Dockerfiles ------------------------------------------------------------------------------


@functools.cache
def instructions(dockerfile: str) -> tuple[tuple[str, str], ...]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in (ROOT / dockerfile).read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return tuple(out)


def _words(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """(sources, absolute destination) of each COPY from the build context."""
    found, workdir = [], "/"
    for keyword, args in instructions(dockerfile):
        if keyword == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        elif keyword in ("COPY", "ADD"):
            words = _words(args)
            if any(w.startswith("--from") for w in words):
                continue
            words = [w for w in words if not w.startswith("--")]
            *sources, dest = words
            target = posixpath.normpath(posixpath.join(workdir, dest))
            if dest.endswith("/") or dest in (".", "./") or len(sources) > 1:
                target = target.rstrip("/") + "/"
            found.append((sources, target))
    return found


def landed(dockerfile: str, name: str) -> list[str]:
    """Where the image holds a copied file named ``name``."""
    paths = []
    for sources, dest in copies(dockerfile):
        for source in sources:
            if posixpath.basename(source.rstrip("/")) == name:
                paths.append(dest + name if dest.endswith("/") else dest)
    return paths


def env(dockerfile: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, args in instructions(dockerfile):
        if keyword == "ENV":
            words = shlex.split(args)
            if words and "=" not in words[0]:  # the legacy `ENV KEY value` form
                values[words[0]] = " ".join(words[1:])
            else:
                values.update(w.split("=", 1) for w in words)
    return values


def workdir(dockerfile: str) -> str:
    current = "/"
    for keyword, args in instructions(dockerfile):
        if keyword == "WORKDIR":
            current = posixpath.join(current, args)
    return current


def dockerfile_of(service: dict[str, Any]) -> str:
    """The Dockerfile of a built service, relative to the repository root."""
    build = service["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT, f"build context {build['context']!r}: make it '..' (the checkout)"
    return build.get("dockerfile", "Dockerfile")


def dockerfiles() -> list[str]:
    return sorted({dockerfile_of(s) for s in services().values() if "build" in s})


def volume_targets(service: dict[str, Any]) -> list[str]:
    targets = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            targets.append(volume["target"])
        else:
            targets.append(volume.split(":")[1])
    return [t.rstrip("/") or "/" for t in targets]


# --- .dockerignore ----------------------------------------------------------------------------


def _pattern(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


@functools.cache
def ignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        glob = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((keep, _pattern(glob)))
    return tuple(rules)


def ignored(path: str) -> bool:
    """Whether docker leaves ``path`` (relative to the context) out: the last pattern that
    matches it or one of its parent folders decides, as in Docker's own matcher."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for keep, rx in ignore_rules():
        if any(rx.fullmatch(p) for p in prefixes):
            result = not keep
    return result


# --- the tests --------------------------------------------------------------------------------


def test_compose_images_are_pinned_to_a_release_tag():
    for name, service in services().items():
        if "image" not in service:
            assert "build" in service, f"service {name}: give it an image or a build"
            continue
        image = service["image"]
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo and "/" not in tag, f"service {name}: pin {image!r} to a tag (no default)"
        assert tag != "latest", f"service {name}: {image!r} floats; pin a dated release tag"
        if repo.startswith("minio/"):
            assert MINIO_TAG.fullmatch(tag), (
                f"{name}: pin {image!r} to a MinIO release tag (RELEASE.YYYY-MM-DDThh-mm-ssZ)"
            )


def test_dockerfile_base_images_are_pinned_python_patch_releases():
    assert dockerfiles(), "compose.yaml builds no image: expected the worker and luigid"
    for dockerfile in dockerfiles():
        bases = [args.split()[0] for keyword, args in instructions(dockerfile) if keyword == "FROM"]
        assert bases, f"{dockerfile}: no FROM line"
        locks = {s for sources, _ in copies(dockerfile) for s in sources if "constraints/" in s}
        for base in bases:
            image, _, tag = base.partition("@")[0].rpartition(":")
            assert image and tag and tag != "latest", f"{dockerfile}: pin FROM {base} to a tag"
            if image == "python":
                match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)-slim-[a-z]+", tag)
                assert match, (
                    f"{dockerfile}: FROM {base}: pin a patch release and Debian, as "
                    "python:3.13.7-slim-bookworm"
                )
                lock = f"constraints/py{match[1]}.{match[2]}.txt"
                assert locks <= {lock}, f"{dockerfile}: on Python {tag} install with -c {lock}"


def test_long_running_services_have_healthchecks():
    for name, service in services().items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", f"{name} runs once: restart: 'no'"
            continue
        check = service.get("healthcheck", {}).get("test")
        assert check, f"service {name} stays up: give it a healthcheck (or list it in ONE_SHOT)"
        assert service.get("restart") == "unless-stopped", f"{name}: restart: unless-stopped"
    luigid = " ".join(services()["luigid"]["healthcheck"]["test"])
    assert ":8082/" in luigid and "urllib" in luigid, (
        "luigid's healthcheck: ask http://127.0.0.1:8082/... with python's urllib (no curl in slim)"
    )
    store = " ".join(services()["store"]["healthcheck"]["test"])
    assert "mc ready" in store or "/minio/health/live" in store, (
        "the store's healthcheck: `mc ready local` or GET /minio/health/live"
    )


def test_worker_and_retrain_start_after_luigid_the_store_and_the_bucket():
    for name in ("worker", "retrain"):
        depends = services()[name].get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on with conditions, not a list"
        conditions = {k: v.get("condition") for k, v in depends.items()}
        expected = {
            "luigid": "service_healthy",
            "store": "service_healthy",
            "bucket": "service_completed_successfully",
        }
        assert conditions == expected, f"{name}: depends_on should be {expected}, is {conditions}"
    store = services()["bucket"]["depends_on"]["store"]["condition"]
    assert store == "service_healthy", "bucket: wait for the store with service_healthy"


def _option(command: list[str], flag: str) -> str:
    assert flag in command, f"{command}: pass {flag}"
    return command[command.index(flag) + 1]


def test_the_worker_runs_a_config_that_writes_to_the_bucket_the_init_creates():
    script = " ".join(services()["bucket"]["command"])
    made = re.findall(r"mc mb (?:--\S+ )*store/([a-z0-9.-]+)", script)
    assert made, "bucket: create the bucket with `mc mb --ignore-existing store/BUCKET`"
    worker_file = dockerfile_of(services()["worker"])
    for name in ("worker", "retrain"):
        command = services()[name]["command"]
        assert _option(command, "--scheduler-host") == "luigid", f"{name}: --scheduler-host luigid"
        config = _option(command, "--config")
        image_path = posixpath.join(workdir(worker_file), config)
        assert image_path in landed(worker_file, posixpath.basename(config)), (
            f"{name} runs --config {config}: COPY it to {image_path} in {worker_file}"
        )
        data = yaml.safe_load((ROOT / config).read_text())
        for key in ("workspace", "publish"):
            assert str(data[key]).startswith(f"s3://{made[0]}/"), (
                f"{config}: {key} should be under s3://{made[0]}/ (the bucket compose creates)"
            )


def test_the_compose_pipeline_is_the_default_one_on_s3():
    ours = yaml.safe_load((DOCKER / "pipeline-s3.yaml").read_text())
    default = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    for key in ("workspace", "publish"):
        ours.pop(key), default.pop(key)
    assert ours == default, (
        "docker/pipeline-s3.yaml differs from config/pipeline.yaml beyond workspace and publish: "
        "copy the change across"
    )


def test_s3_secret_is_required_or_defaults_to_8_characters():
    text = COMPOSE.read_text()
    uses = SECRET.findall(text)
    assert uses, "compose.yaml should take MinIO's password from ${MLCD_S3_SECRET...}"
    for operator, word in uses:
        if "-" in operator:
            assert len(word) >= 8, f"MLCD_S3_SECRET's default {word!r}: MinIO needs 8+ characters"
        else:
            assert operator == ":?" and "8" in word, (
                "${MLCD_S3_SECRET:?...}: say in the message that 8 or more characters are needed"
            )
    store = services()["store"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert SECRET.fullmatch(store), "store: MINIO_ROOT_PASSWORD: ${MLCD_S3_SECRET...}"


def test_no_volume_shadows_luigi_cfg_or_the_working_directory():
    for name, service in services().items():
        if "build" not in service:
            continue
        dockerfile = dockerfile_of(service)
        cfgs = landed(dockerfile, "luigi.cfg")
        assert cfgs, f"{dockerfile}: COPY luigi.cfg into the image"
        named = env(dockerfile).get("LUIGI_CONFIG_PATH")
        assert named in cfgs, f"{dockerfile}: set LUIGI_CONFIG_PATH to the copied luigi.cfg"
        # Luigi also reads ./luigi.cfg: a volume on the working directory could hold a stale one.
        watched = [*cfgs, posixpath.join(workdir(dockerfile), "luigi.cfg")]
        for target in volume_targets(service):
            for path in watched:
                assert not (path + "/").startswith(target.rstrip("/") + "/"), (
                    f"service {name}: the volume at {target} hides {path} of the image; mount "
                    "it on a state folder that holds no config"
                )


def test_luigid_keeps_its_state_in_the_volume_and_logs_to_docker():
    luigid = services()["luigid"]
    dockerfile = dockerfile_of(luigid)
    (cmd,) = [_words(args) for keyword, args in instructions(dockerfile) if keyword == "CMD"]
    command = luigid.get("command", cmd)
    assert "--background" not in command, "luigid: run in the foreground (no --background)"
    assert "--logdir" not in command, "luigid: no --logdir (it logs to a file, not docker logs)"
    state = _option(command, "--state-path")
    (target,) = volume_targets(luigid)
    assert state.startswith(target + "/"), f"luigid: --state-path {state} should be under {target}"
    # luigi.cfg's task history database is relative to the working directory.
    cfg = (ROOT / "luigi.cfg").read_text()
    db = re.search(r"^db_connection = sqlite:///(?!/)(\S+)$", cfg, re.M)
    if db:
        path = posixpath.join(workdir(dockerfile), db[1])
        assert path.startswith(target + "/"), f"luigid: the task history {path} is not in {target}"


def test_dockerignore_excludes_local_state_and_environments():
    assert (ROOT / ".dockerignore").exists(), "add a .dockerignore at the repository root"
    for path in (
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-3.13/bin/python",
        ".mlcd/workspace/x.json",
        "config/.mlcd/registry/x",
        "mlcd/__pycache__/cli.cpython-313.pyc",
        "mlcd.egg-info/PKG-INFO",
        "benchmarks/.data/rows.parquet",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.13/x.json",
        ".ruff_cache/CACHEDIR.TAG",
    ):
        assert ignored(path), f".dockerignore: add a pattern that excludes {path}"


def test_every_copied_file_exists_and_is_in_the_build_context():
    assert {"docker/Dockerfile.luigid", "docker/Dockerfile.worker"} <= set(dockerfiles())
    for dockerfile in dockerfiles():
        for sources, _ in copies(dockerfile):
            for source in sources:
                path = ROOT / source
                assert path.exists(), f"{dockerfile}: COPY {source}: no such file in the checkout"
                assert not ignored(source), f"{dockerfile} copies {source}: .dockerignore drops it"
                if path.is_dir():
                    dropped = [
                        str(f.relative_to(ROOT))
                        for f in path.rglob("*")
                        if f.is_file() and "__pycache__" not in f.parts
                        if ignored(str(f.relative_to(ROOT)))
                    ]
                    assert not dropped, f"{dockerfile} COPY {source}: .dockerignore drops {dropped}"


def test_the_web_ui_is_published_on_loopback_only():
    for name, service in services().items():
        assert not service.get("ports"), f"{name} publishes a port: no auth; use {UI.name}"
    assert compose()["networks"]["mlcd"].get("internal") is True, "keep the mlcd network internal"
    ui = yaml.safe_load(UI.read_text())
    for name, service in ui["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{UI.name}: {name}: bind {port} to loopback"


def test_retrain_loop_runs_on_the_project_crontab_schedule():
    spec = importlib.util.spec_from_file_location("retrain", DOCKER / "retrain.py")
    assert spec and spec.loader
    retrain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(retrain)
    minute, hour = retrain.schedule((ROOT / "config" / "crontab").read_text())
    job = f"{minute} {hour} * * *"
    assert re.search(rf"^\s*{job}\s", (ROOT / "config" / "crontab").read_text(), re.M)
    at, when = (minute, hour), datetime(2026, 1, 15, hour, minute)
    assert retrain.due(when, at, None) and retrain.due(when + timedelta(hours=1), at, None)
    assert not retrain.due(when, at, when.date()), "the loop should run once a day"
    if when.time() > time(0, 0):
        assert not retrain.due(when - timedelta(minutes=1), at, None), "not before the hour"

    service = services()["retrain"]
    assert service.get("profiles") == ["cron"], "retrain: profiles: [cron], off by default"
    dockerfile = dockerfile_of(service)
    script = posixpath.join(workdir(dockerfile), service["entrypoint"][-1])
    assert script in landed(dockerfile, "retrain.py"), f"{dockerfile}: COPY it to {script}"
    assert service["command"] == services()["worker"]["command"][1:], (
        "retrain: pass the worker's `mlcd run` options (its command without `run`)"
    )
