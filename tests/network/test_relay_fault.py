"""The relay killed at random moments, the national server killed once: nothing lost, nothing twice.

Relays and the server run as separate processes forked from this one (so a restart
costs no interpreter start-up) and die by SIGKILL: no shutdown code runs, as after a
power cut. Meanwhile clerks keep recording events. At the end one `jumin relay --once`
drains what is left and `jumin network reconcile` must find the two sides equal.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import random
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select

from jumin.app import create_app
from jumin.audit import service as audit
from jumin.audit.domain import Actor
from jumin.audit.models import AuditEntry
from jumin.core.replication import municipality_key_name
from jumin.db import make_engine, unit_of_work
from jumin.keys import load_or_create_ed25519
from jumin.network.identity import service as national_service
from jumin.network.identity.models import (
    ForwardedNotice,
    IdentityHistory,
    InboxMessage,
    SourceSequence,
)
from jumin.network_client import InProcessNetworkClient
from jumin.reconcile import reconcile
from jumin.registry import service
from jumin.registry.arrival_models import ExpectedArrival
from jumin.registry.domain import EventKind
from jumin.registry.models import OutboxMessage, Person
from jumin.registry.relay import Relay
from jumin.registry.schemas import BirthRequest, MoveInRequest, MoveOutRequest, RemovalRequest
from tests.conftest import BACKENDS
from tests.network.replication_support import CHIYODA, SAPPORO
from tests.network.servers import Deployment, deployment, free_port
from tests.registry.conftest import member, today

KILLS = 12
_fork = multiprocessing.get_context("fork")


# ---------------------------------------------------------------------------
# Children: they build their own engines and never touch the parent's connections.


def _serve(municipal_url: str, national_url: str, port: int) -> None:
    national = make_engine(national_url)
    app = create_app(
        make_engine(municipal_url),
        InProcessNetworkClient(lambda: unit_of_work(national)),
        national_engine=national,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False, lifespan="off")


def _relay(municipal_url: str, url: str) -> None:
    relay = Relay(url=url, engine=make_engine(municipal_url), batch_size=2, base_delay=0.05, max_delay=0.4)
    relay.run_forever(interval=0.05)


def _start(target: Callable[..., None], *args: Any) -> BaseProcess:
    process = _fork.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _kill(process: BaseProcess) -> None:
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)


def _start_server(d: Deployment, port: int) -> BaseProcess:
    process = _start(_serve, d.municipal_url, d.national_url, port)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError("the national server did not come up")


# ---------------------------------------------------------------------------
# Clerks at work, in this process


class Clerks:
    def __init__(self, municipal: Engine, national: Engine) -> None:
        self.municipal = municipal
        self.network = InProcessNetworkClient(lambda: unit_of_work(national))
        # Households that came from abroad 90 days ago: they may move (once), have a baby
        # or lose a member, all dated after they came and before anyone moved.
        self.households: dict[str, list[tuple[int, list[int]]]] = {CHIYODA: [], SAPPORO: []}
        self.counter = 0

    def ctx(self, lg_code: str) -> service.RegistryContext:
        return service.RegistryContext(actor=Actor.system(lg_code), lg_code=lg_code, network=self.network)

    def _name(self) -> str:
        self.counter += 1
        return "".join("一二三四五六七八九十"[int(c)] for c in str(self.counter))

    def family(self, lg_code: str) -> None:
        given = self._name()
        request = MoveInRequest.model_validate(
            {
                "effective_on": (today() - dt.timedelta(days=90)).isoformat(),
                "address": {"line": f"一丁目{self.counter}番"},
                "previous_address": "アメリカ合衆国",
                "members": [
                    member("鈴木", f"太郎{given}", ("スズキ", "タロウ")),
                    member("鈴木", f"花子{given}", ("スズキ", "ハナコ"), sex="female", relationship="妻"),
                ],
            }
        )
        with unit_of_work(self.municipal) as session:
            out = service.move_in(
                session, ctx=self.ctx(lg_code), request=request, kind=EventKind.MOVE_IN_FROM_ABROAD
            )
        self.households[lg_code].append((out.household_ids[0], list(out.person_ids)))

    def _versions(self, session: Any, ids: list[int]) -> list[dict[str, int]]:
        return [{"person_id": p, "version": session.get(Person, p).version} for p in ids]

    def move(self, origin: str, destination: str) -> None:
        if not self.households[origin]:
            return
        _, ids = self.households[origin].pop(0)
        day = (today() - dt.timedelta(days=3)).isoformat()
        with unit_of_work(self.municipal) as session:
            service.move_out(
                session,
                ctx=self.ctx(origin),
                request=MoveOutRequest.model_validate(
                    {
                        "effective_on": day,
                        "notified_on": (today() - dt.timedelta(days=4)).isoformat(),
                        "persons": self._versions(session, ids),
                        "destination": "転出先",
                        "destination_lg_code": destination,
                    }
                ),
            )
        with unit_of_work(self.municipal) as session:
            records = [
                service.get_record(session, ctx=self.ctx(origin), person_id=p, purpose="転入の確認").record
                for p in ids
            ]
            out = service.move_in(
                session,
                ctx=self.ctx(destination),
                request=MoveInRequest.model_validate(
                    {
                        "effective_on": day,
                        "address": {"line": f"二丁目{self.counter}番"},
                        "previous_address": "転出元",
                        "origin_lg_code": origin,
                        "members": [
                            member(
                                r.family_name,
                                r.given_name,
                                (r.family_name_kana or "", r.given_name_kana or ""),
                                birth=r.birth_date.isoformat(),
                                sex=r.sex.value,
                                relationship=r.relationship,
                                resident_code=r.resident_code,
                                individual_number=r.individual_number,
                            )
                            for r in records
                        ],
                    }
                ),
            )
        assert out.person_ids

    def birth(self, lg_code: str) -> None:
        if not self.households[lg_code]:
            return
        household, ids = self.households[lg_code][-1]
        day = (today() - dt.timedelta(days=10)).isoformat()
        with unit_of_work(self.municipal) as session:
            version = service.get_household(
                session, ctx=self.ctx(lg_code), household_id=household, purpose="出生届"
            ).version
            out = service.birth(
                session,
                ctx=self.ctx(lg_code),
                request=BirthRequest.model_validate(
                    {
                        "effective_on": day,
                        "child": member(
                            "鈴木", f"子{self._name()}", ("スズキ", "コ"), birth=day, relationship="子"
                        ),
                        "household": {"household_id": household, "version": version},
                    }
                ),
            )
        ids.extend(out.person_ids)

    def death(self, lg_code: str) -> None:
        couples = [ids for _, ids in self.households[lg_code] if len(ids) >= 2]
        if not couples:
            return
        spouse = couples[0].pop(1)
        with unit_of_work(self.municipal) as session:
            service.removal(
                session,
                ctx=self.ctx(lg_code),
                request=RemovalRequest.model_validate(
                    {
                        "effective_on": (today() - dt.timedelta(days=10)).isoformat(),
                        "person": self._versions(session, [spouse])[0],
                    }
                ),
                kind=EventKind.DEATH,
            )

    def some_more(self, rng: random.Random) -> None:
        step = rng.choice(["move", "back", "birth", "death", "family"])
        if step == "move":
            self.move(CHIYODA, SAPPORO)
        elif step == "back":
            self.move(SAPPORO, CHIYODA)
        elif step == "birth":
            self.birth(rng.choice([CHIYODA, SAPPORO]))
        elif step == "death":
            self.death(rng.choice([CHIYODA, SAPPORO]))
        else:
            self.family(rng.choice([CHIYODA, SAPPORO]))


def _count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_killing_the_relay_and_the_server_loses_nothing_and_applies_nothing_twice(
    backend: str, tmp_path: Path
) -> None:
    rng = random.Random(4)
    with deployment(backend, tmp_path, "fault") as d:
        municipal, national = d.engine("municipal"), d.engine("national")
        clerks = Clerks(municipal, national)
        for _ in range(8):
            clerks.family(CHIYODA)
            clerks.family(SAPPORO)
        for _ in range(3):
            clerks.move(CHIYODA, SAPPORO)
        clerks.move(SAPPORO, CHIYODA)
        clerks.birth(CHIYODA)
        clerks.death(SAPPORO)

        # The commands an operator types, once (on SQLite: they do not depend on the backend
        # and each costs an interpreter start); the same services in-process otherwise.
        cli = backend == "sqlite"
        pem = tmp_path / "chiyoda.pem"
        pem.write_text(load_or_create_ed25519(municipality_key_name(CHIYODA)).public_pem())
        if cli:
            registered = d.jumin("network", "register-key", CHIYODA, "--public-key", str(pem))
            assert registered.returncode == 0, registered.stderr
        with unit_of_work(national) as session:
            national_service.register_key(session, lg_code=CHIYODA, public_key_pem=pem.read_text())
            sapporo_key = load_or_create_ed25519(municipality_key_name(SAPPORO)).public_pem()
            national_service.register_key(session, lg_code=SAPPORO, public_key_pem=sapporo_key)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = _start_server(d, port)
        delivered = (
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_not(None))
        )
        received = select(func.count()).select_from(InboxMessage)
        kills = unacknowledged = 0
        restarted = False
        try:
            undelivered_now = (
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
            )
            while kills < KILLS or (unacknowledged == 0 and kills < 30):
                while _count(municipal, undelivered_now) < 4:
                    clerks.some_more(rng)
                relay = _start(_relay, d.municipal_url, url)
                before = _count(national, received)
                deadline = time.monotonic() + 10
                while _count(national, received) == before and time.monotonic() < deadline:
                    time.sleep(0.005)
                if kills == KILLS // 2 and not restarted:
                    # The national server dies mid-stream too; the relay waits it out.
                    _kill(server)
                    time.sleep(0.3)
                    server = _start_server(d, port)
                    restarted = True
                    resumed = _count(national, received)
                    while _count(national, received) == resumed and time.monotonic() < deadline + 10:
                        time.sleep(0.005)
                time.sleep(rng.uniform(0, 0.06))
                _kill(relay)
                kills += 1
                if _count(national, received) > _count(municipal, delivered):
                    unacknowledged += 1  # applied nationally, never marked delivered here
                if kills % 3 == 0:
                    clerks.some_more(rng)
            assert restarted
            assert unacknowledged >= 1

            if cli:
                drained = d.jumin("relay", "--once", "--url", url)
                assert drained.returncode == 0, drained.stdout + drained.stderr
                assert json.loads(drained.stdout)["errors"] == []
            else:
                assert Relay(url=url, engine=municipal).run_once().errors == []
        finally:
            _kill(server)

        if cli:
            reconciled = d.jumin("network", "reconcile")
            assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
            assert all(json.loads(line)["clean"] for line in reconciled.stdout.splitlines())
        else:
            report = reconcile(lg_codes=[CHIYODA, SAPPORO], municipal_engine=municipal, national_db=national)
            assert report.clean, report.differences

        with municipal.connect() as conn:
            outbox = conn.execute(select(OutboxMessage.idempotency_key, OutboxMessage.kind)).all()
            persons = {
                (lg, pid): seq
                for lg, pid, seq in conn.execute(select(Person.lg_code, Person.id, Person.outbox_seq)).all()
            }
            undelivered = conn.execute(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
            ).scalar_one()
            arrivals = conn.execute(select(func.count()).select_from(ExpectedArrival)).scalar_one()
        with national.connect() as conn:
            inbox = conn.execute(select(InboxMessage.idempotency_key, InboxMessage.applied_at)).all()
            history = conn.execute(select(func.count()).select_from(IdentityHistory)).scalar_one()
            notices = conn.execute(select(func.count()).select_from(ForwardedNotice)).scalar_one()
            sequences = {
                (lg, pid): seq
                for lg, pid, seq in conn.execute(
                    select(
                        SourceSequence.source_lg_code,
                        SourceSequence.source_person_id,
                        SourceSequence.last_seq,
                    )
                ).all()
            }
            duplicates = sum(
                int(detail.split("duplicate=")[1].split()[0])
                for detail in conn.execute(
                    select(AuditEntry.detail).where(AuditEntry.action == "network.replication_batch_received")
                ).scalars()
            )
        assert undelivered == 0
        assert sorted(k for k, _ in inbox) == sorted(k for k, _ in outbox)  # each message once
        assert all(applied is not None for _, applied in inbox)
        identity_messages = sum(1 for _, kind in outbox if kind == "identity_changed")
        assert history == identity_messages  # each applied exactly once
        assert notices == arrivals == sum(1 for _, kind in outbox if kind == "move_out_certificate")
        assert sequences == persons  # every record's messages applied up to its last
        assert duplicates >= 1  # the kills did make the relay send some messages twice
        for engine in (municipal, national):
            with unit_of_work(engine) as session:
                assert audit.verify(session).intact
