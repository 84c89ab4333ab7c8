"""The layering of docs/architecture.md: the catalogue's names match the code that owns them."""

from __future__ import annotations

import subprocess
import sys

import tasks
from mlcd import catalogue
from mlcd.cli import build_parser
from mlcd.errors import EXIT_CODES, MlcdError
from tests.conftest import STEPS


def test_the_catalogue_names_the_pipeline_steps_in_the_order_the_tasks_require_them():
    from luigi.task import flatten

    assert list(catalogue.STEPS) == STEPS
    found, stack = {}, [tasks.PublishModel(config_path="config/pipeline.yaml")]
    while stack:
        task = stack.pop()
        family = task.get_task_family()
        if family not in found:
            found[family] = task
            stack.extend(t for t in flatten(task.requires()) if hasattr(t, "identity"))
    assert set(found) == set(catalogue.STEPS)
    for family, task in found.items():
        for needed in flatten(task.requires()):
            earlier = catalogue.STEPS.index(needed.get_task_family())
            assert earlier < catalogue.STEPS.index(family), (family, needed.get_task_family())


def test_every_exit_code_of_an_error_class_is_in_the_one_list_the_help_prints():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    listed = set(EXIT_CODES.values())
    for cls in subclasses(MlcdError):
        if isinstance(cls.__dict__.get("exit_code"), int):
            assert cls.exit_code in listed, cls.__name__
    epilog = build_parser().epilog or ""
    for kind, code in EXIT_CODES.items():
        assert f"{code} {kind}" in epilog


def test_mlcd_help_imports_neither_luigi_nor_the_tasks():
    code = (
        "import sys; from mlcd.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('luigi', 'tasks', 'pandas')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
