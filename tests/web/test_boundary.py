"""The web layer holds read models, never ORM objects: the registry's services package exports no
ORM class, and no web module has one (or SQLAlchemy's Session) among its names, whichever way it
was imported. import-linter forbids the direct imports; this catches the re-exported ones."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import sqlalchemy.orm

import vpnreg.web
from vpnreg.registry import services
from vpnreg.registry.models import Base


def _orm_names(module: ModuleType) -> list[str]:
    found = []
    for name, value in vars(module).items():
        if isinstance(value, type) and (
            issubclass(value, Base) or issubclass(value, sqlalchemy.orm.Session)
        ):
            found.append(name)
    return found


def _web_modules() -> list[ModuleType]:
    modules: list[ModuleType] = [vpnreg.web]
    for info in pkgutil.walk_packages(vpnreg.web.__path__, prefix="vpnreg.web."):
        modules.append(importlib.import_module(info.name))
    return modules


def test_the_services_package_exports_no_orm_class() -> None:
    assert _orm_names(services) == []


def test_no_web_module_holds_an_orm_class_or_a_session_class() -> None:
    modules = _web_modules()
    assert len(modules) > 10
    held = {m.__name__: names for m in modules if (names := _orm_names(m))}
    assert held == {}
