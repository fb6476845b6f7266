"""Console users from the command line: roles with their units or official, audited role changes,
disabling, real Argon2id hashes; and the rules a role's links must follow (both databases)."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from server import users
from server.db.models import AUDIT, USERS
from server.registry import RegistryError
from server.users import create_user, set_role
from tests.utils.console import run_cli as motcua
from tests.utils.factories import make_office


def test_user_commands_with_roles_units_and_officials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "_hasher", PasswordHasher())  # the production parameters, for this test
    env = {"MOTCUA_MODE": "production", "MOTCUA_SECRET_KEY": "x" * 40,
           "MOTCUA_DATABASE_URL": f"sqlite:///{tmp_path / 'users.sqlite3'}"}
    assert motcua("db", "upgrade", env=env).exit_code == 0
    motcua("admin", "unit-add", "P-MK", "UBND phường Minh Khai", env=env)
    motcua("admin", "official-add", "--unit", "P-MK", "CB-1", "Nguyễn Văn A", env=env)
    made = motcua("admin", "user-add", "lan", "--role", "supervisor", "--unit", "P-MK", env=env,
                  stdin="một mật khẩu dài\n")
    assert made.exit_code == 0, made.output
    no_unit = motcua("admin", "user-add", "hoa", "--role", "supervisor", env=env, stdin="một mật khẩu dài\n")
    assert no_unit.exit_code == 2 and "needs at least one unit" in no_unit.output
    official = motcua("admin", "user-add", "cb1", "--role", "official", "--official", "CB-1", env=env,
                      stdin="một mật khẩu dài\n")
    assert official.exit_code == 0, official.output
    role = motcua("admin", "user-role", "lan", "--role", "unit_head", "--unit", "P-MK", env=env)
    assert role.exit_code == 0 and "unit_head" in role.output
    assert motcua("admin", "user-disable", "cb1", "--reason", "transferred", env=env).exit_code == 0
    listing = motcua("admin", "user-list", env=env).output
    assert "lan" in listing and "unit_head" in listing and "P-MK" in listing and "official CB-1" in listing
    assert "disabled" in listing
    from server.db.engine import make_engine

    engine = make_engine(env["MOTCUA_DATABASE_URL"])
    with engine.connect() as conn:
        stored = conn.execute(select(USERS.c.password_hash).where(USERS.c.username == "lan")).scalar_one()
        change = conn.execute(select(AUDIT.c.actor, AUDIT.c.detail).where(AUDIT.c.action == "user.role")).one()
    engine.dispose()
    # The library's recommended Argon2id parameters (RFC 9106 "second recommended option"), not the tests' cheap ones.
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert change.actor == "cli" and change.detail["from"] == {"role": "supervisor", "units": ["P-MK"],
                                                               "official": None}


def test_what_each_role_must_and_must_not_be_tied_to(engine: Engine) -> None:
    make_office(engine, code="PA")
    with engine.begin() as conn:
        create_user(conn, username="sup", password="a long password", role="supervisor", actor="t", units=["PA"])
    cases = [("supervisor", [], None, "needs at least one unit"), ("admin", ["PA"], None, "not limited to units"),
             ("official", [], None, "needs --official"), ("viewer", [], "PA-CB001", "needs --official CODE (and only"),
             ("unit_head", ["NOPE"], None, "no unit 'NOPE'"), ("official", [], "NOBODY", "no official 'NOBODY'"),
             ("root", [], None, "unknown role")]
    for role, units, official, message in cases:
        with pytest.raises(RegistryError, match=message.replace("(", r"\(")), engine.begin() as conn:
            set_role(conn, username="sup", role=role, actor="t", units=units, official=official)
    with pytest.raises(RegistryError, match="at least 12"), engine.begin() as conn:
        create_user(conn, username="x", password="short", role="viewer", actor="t")
    with pytest.raises(RegistryError, match="must not be the user name"), engine.begin() as conn:
        create_user(conn, username="averylongname", password="AveryLongName", role="viewer", actor="t")
