"""Safe defaults and bounded cost (issue 13): local host by default, a loud warning for a shared
deployment without identities, rate-limited and logged log-ins, hidden events that check the
identity, per-annotator statistics for admins only, bounded worklist leases, the upload cache
emptied, the time budget."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest

import storage
from adasam.budget import Deadline
from adasam.errors import ConfigError, TimeBudgetError
from storage import ensure_annotator, next_case, walk_case
from storage.models import CaseLease
from studio.case_handlers import CaseHandlers
from studio.config import StudioSettings, parse_trusted_proxies
from studio.errors import StudioError
from studio.identity import LoginGuard
from studio.layout import launch_options
from studio.review_handlers import ReviewHandlers
from studio.services import Services, build_services
from studio.uploads import STUDIO_CACHE_NAME, discard_upload, sweep_upload_cache, take_upload
from tests.studio.conftest import CT_SMALL, make_settings


# -- where the server listens --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "host"),
    [
        ({}, "127.0.0.1"),
        ({"GRADIO_SERVER_NAME": "0.0.0.0"}, "0.0.0.0"),
        ({"SPACE_ID": "org/studio"}, "0.0.0.0"),
        ({"ADASAM_HOST": "10.1.2.3", "GRADIO_SERVER_NAME": "0.0.0.0"}, "10.1.2.3"),
    ],
)
def test_the_server_listens_on_this_machine_unless_a_host_is_set(
    env: dict[str, str], host: str
) -> None:
    assert StudioSettings.from_env(env).host == host


def test_the_dockerfile_sets_the_host_for_containers() -> None:
    dockerfile = (Path(__file__).parents[2] / "Dockerfile").read_text()
    assert "ADASAM_HOST=0.0.0.0" in dockerfile


def test_a_shared_deployment_without_identities_warns_loudly() -> None:
    shared = StudioSettings.from_env({"ADASAM_HOST": "0.0.0.0"})
    (warning,) = shared.warnings()
    assert "WITHOUT AN IDENTITY PROVIDER" in warning and "ADASAM_USERS" in warning
    assert StudioSettings.from_env({}).warnings() == []  # local only
    with_users = {"ADASAM_HOST": "0.0.0.0", "ADASAM_USERS": "alice:pw"}
    assert StudioSettings.from_env(with_users).warnings() == []


# -- log-in ---------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_attempts_are_rate_limited_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    guard = LoginGuard((("alice", "s3cret"), ("bob", "pw")), max_failures=5, clock=clock)
    caplog.set_level(logging.WARNING, logger="studio")
    assert guard("alice", "s3cret")
    for _ in range(5):
        assert not guard("alice", "guess")
    assert not guard("alice", "s3cret"), "locked: even the right password waits"
    assert guard("bob", "pw"), "other users are not locked"
    text = caplog.text
    assert text.count("login failed for user 'alice'") == 5 and "login locked" in text
    assert "guess" not in text and "s3cret" not in text  # passwords are never logged
    clock.now += 61
    assert guard("alice", "s3cret")


USERS = (("alice", "pw-a"), ("bob", "pw-b"))


def test_one_users_failures_lock_that_user_only(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    guard = LoginGuard(USERS, max_failures=5, max_per_address=30, clock=clock)
    caplog.set_level(logging.WARNING, logger="studio")
    for _ in range(5):
        assert not guard.attempt("alice", "guess", "10.0.0.9")
    assert not guard.attempt("alice", "pw-a", "10.0.0.9"), "A is still locked"
    assert guard.attempt("bob", "pw-b", "10.0.0.9"), "B, even from the same address, is not"
    assert guard.attempt("alice", "pw-a", "10.0.0.7"), "A from another address is not locked"
    assert "login locked for user 'alice' from 10.0.0.9" in caplog.text
    clock.now += 61
    assert guard.attempt("alice", "pw-a", "10.0.0.9")


def test_guessing_over_many_names_locks_that_address_not_everyone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    guard = LoginGuard(USERS, max_failures=5, max_per_address=10, clock=clock)
    caplog.set_level(logging.WARNING, logger="studio")
    for i in range(10):  # a spray: one guess for each of ten names, from one address
        assert not guard.attempt(f"user{i}", "x", "203.0.113.5")
    assert not guard.attempt("alice", "pw-a", "203.0.113.5"), "the spraying address is locked"
    assert guard.attempt("alice", "pw-a", "10.0.0.7"), "real users elsewhere are not"
    assert guard.attempt("bob", "pw-b", "10.0.0.8")
    assert "logins from 203.0.113.5 refused" in caplog.text
    clock.now += 61
    assert guard.attempt("alice", "pw-a", "203.0.113.5")


def test_a_spray_of_names_is_not_a_global_lockout_without_an_address() -> None:
    clock = FakeClock()
    guard = LoginGuard(USERS, max_failures=5, max_per_address=10, clock=clock)
    for i in range(200):
        assert not guard.attempt(f"user{i}", "x", None)
    assert guard.attempt("alice", "pw-a", None), "per name only: alice was never guessed"


def test_the_failure_tables_stay_bounded_under_a_spray() -> None:
    clock = FakeClock()
    guard = LoginGuard(USERS, clock=clock)
    guard.MAX_TRACKED = 50
    for i in range(40):
        guard.attempt(f"old{i}", "x", f"198.51.100.{i}")
    clock.now += 120  # those failures are out of the window now
    for i in range(40):
        guard.attempt(f"new{i}", "x", f"192.0.2.{i}")
    assert len(guard._failures) <= 50 and len(guard._by_address) <= 50


@contextmanager
def _serving(services: Services, studio: StudioSettings) -> Iterator[tuple[str, LoginGuard]]:
    """The studio served on 127.0.0.1 with password log-in: its /login URL and its guard."""
    from studio import build_ui
    from tests.studio.test_api_client import free_port

    services.studio = studio
    options = launch_options(services)
    demo = build_ui(services)
    options.update(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    _, url, _ = demo.launch(**options)
    try:
        yield url.rstrip("/") + "/login", options["auth"]
    finally:
        demo.close()


def test_over_http_the_lockout_is_per_client_address(services: Services) -> None:
    """Through Gradio's /login: the middleware hands the client address to the guard."""
    import httpx

    studio = StudioSettings(identity="password", users=USERS, seed_worklist=False)
    with _serving(services, studio) as (login, guard):
        for _ in range(guard.max_failures):
            assert (
                httpx.post(login, data={"username": "alice", "password": "no"}).status_code == 400
            )
        right = {"username": "alice", "password": "pw-a"}
        assert httpx.post(login, data=right).status_code == 400, "locked from 127.0.0.1"
        assert ("alice", "127.0.0.1") in guard._locked, "the guard saw the client address"
        ok = httpx.post(login, data={"username": "bob", "password": "pw-b"})
        assert ok.status_code == 200 and ok.json() == {"success": True}
        assert guard.attempt("alice", "pw-a", "10.0.0.7"), "alice elsewhere can log in"


@pytest.mark.parametrize(
    ("trusted", "locked_from"), [("", "127.0.0.1"), ("127.0.0.1", "203.0.113.9")]
)
def test_over_http_a_forwarded_address_counts_only_from_a_trusted_proxy(
    services: Services, monkeypatch: pytest.MonkeyPatch, trusted: str, locked_from: str
) -> None:
    """A client on this machine sends X-Forwarded-For: ignored unless 127.0.0.1 is a trusted
    proxy, then the lockout is on the forwarded address (the web server's own header
    handling is off, as ``app.py`` sets it; left on, it believed any loopback peer)."""
    import httpx

    from studio.identity import SERVER_PROXY_HEADERS_OFF

    for name, value in SERVER_PROXY_HEADERS_OFF.items():
        monkeypatch.setenv(name, value)
    studio = StudioSettings(
        identity="password",
        users=USERS,
        seed_worklist=False,
        trusted_proxies=parse_trusted_proxies(trusted),
    )
    with _serving(services, studio) as (login, guard):
        forwarded = {"X-Forwarded-For": "10.9.9.9, 203.0.113.9"}
        for _ in range(guard.max_failures):
            wrong = {"username": "alice", "password": "no"}
            assert httpx.post(login, data=wrong, headers=forwarded).status_code == 400
        assert set(guard._locked) == {("alice", locked_from)}


def test_password_log_in_goes_through_the_guard(services: Services) -> None:
    services.studio = StudioSettings(identity="password", users=(("alice", "pw"),))
    auth = launch_options(services)["auth"]
    assert isinstance(auth, LoginGuard) and auth("alice", "pw") and not auth("alice", "no")


# -- identity checks and roles --------------------------------------------------------------------
@pytest.fixture
def password_services(tmp_path: Path, studio_bundle_dir: Path) -> Services:
    built = build_services(
        make_settings(tmp_path / "data", studio_bundle_dir),
        StudioSettings(
            identity="password",
            users=(("alice", "pw"), ("bob", "pw")),
            admins=("alice",),
            seed_worklist=False,
        ),
    )
    yield built
    built.close()


def _as(user: str | None) -> SimpleNamespace:
    return SimpleNamespace(username=user)


def test_hidden_events_refuse_a_request_without_a_log_in(
    password_services: Services, tmp_path: Path
) -> None:
    cases = CaseHandlers(password_services)
    password_services.upload_root = tmp_path / "cache"
    upload = password_services.upload_root / "abc" / "scan.dcm"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(CT_SMALL.read_bytes())
    with pytest.raises(gr.Error, match="log in"):
        cases.import_batch([str(upload)], _as(None), None)
    assert not upload.exists(), "a refused upload is not left in the cache"
    with pytest.raises(gr.Error, match="log in"):
        cases.import_examples(_as(None), None)
    assert "added" in cases.import_examples(_as("bob"), None)["batch_md"]


def test_statistics_per_annotator_are_for_admins_only(password_services: Services) -> None:
    cases = CaseHandlers(password_services)
    review = ReviewHandlers(password_services, cases)
    ensure_annotator(password_services.store, "bob")
    admin = review.statistics(_as("alice"), None)["stats_md"]
    other = review.statistics(_as("bob"), None)["stats_md"]
    assert "Corrections per annotator**: —" in admin
    assert "for administrators" in other and "yours: 0" in other
    with pytest.raises(gr.Error):
        review.statistics(_as(None), None)


def test_name_identity_shows_annotators_only_on_a_local_server() -> None:
    assert StudioSettings(identity="name", host="127.0.0.1").is_admin(None)
    assert not StudioSettings(identity="name", host="0.0.0.0").is_admin("anyone")
    assert not StudioSettings(identity="password", admins=("alice",)).is_admin("bob")


def test_an_annotator_holds_at_most_one_worklist_lease(password_services: Services) -> None:
    cases = CaseHandlers(password_services)
    cases.import_examples(_as("alice"), None)
    store = password_services.store
    ensure_annotator(store, "alice")
    first = next_case(store, "alice")
    assert first is not None
    for _ in range(6):
        assert next_case(store, "alice").id == first.id  # type: ignore[union-attr]
    with store.read() as session:
        assert session.query(CaseLease).count() == 1
    seen: list[str] = []  # the page's walk: each press moves the one lease on
    for _ in range(6):
        record = walk_case(store, "alice", visited=seen)
        assert record is not None
        seen.append(record.content_hash)
        with store.read() as session:
            assert session.query(CaseLease).count() == 1
    assert len(set(seen)) == 6


def _from(address: str, forwarded: str | None = None) -> SimpleNamespace:
    """A request from ``address`` (name identity: no log-in)."""
    headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
    return SimpleNamespace(username=None, client=SimpleNamespace(host=address), headers=headers)


def _take(cases: CaseHandlers, name: str, request: SimpleNamespace) -> str:
    """``name`` presses Next case; the content hash of the case they got."""
    screen = cases.next_case(name, None, None, request, None)
    assert f"reserved for {name}" in screen["worklist_md"]
    return screen["state"].source.worklist_hash


def test_made_up_names_from_one_address_hold_a_bounded_number_of_cases(
    services: Services,
) -> None:
    """The probe's attack: one client typing new names to reserve every worklist case."""
    cases = CaseHandlers(services)
    cases.import_examples(_from("127.0.0.1"), None)  # six cases
    store = services.store
    limit = services.studio.leases_per_address
    assert limit == 4 and services.studio.lease_limit == 4
    here = _from("198.51.100.4")
    taken = {f"made-up {i}": _take(cases, f"made-up {i}", here) for i in range(limit)}
    refusal = "already holds worklist cases under 4 other names"
    with pytest.raises(gr.Error, match=refusal):
        cases.next_case(f"made-up {limit}", None, None, here, None)
    with pytest.raises(gr.Error, match=refusal):  # a header from an untrusted peer changes nothing
        cases.next_case("made-up 9", None, None, _from("198.51.100.4", "10.9.9.9"), None)
    names = [*taken, f"made-up {limit}", "made-up 9"]
    assert storage.lease_holders(store, names) == set(taken), "the refused names hold nothing"
    _take(cases, "made-up 0", here)  # a name that took a case here walks on
    _take(cases, "a colleague", _from("203.0.113.7"))  # another address still gets a case
    with store.read() as session:
        assert session.query(CaseLease).count() == limit + 1
    assert storage.release_case(store, "made-up 1", taken["made-up 1"])  # one case given back
    _take(cases, f"made-up {limit}", here)


def test_behind_a_trusted_proxy_the_bound_is_per_forwarded_address(services: Services) -> None:
    services.studio = replace(
        services.studio, leases_per_address=2, trusted_proxies=parse_trusted_proxies("10.0.0.5")
    )
    cases = CaseHandlers(services)
    cases.import_examples(_from("127.0.0.1"), None)
    for name in ("a1", "a2"):
        _take(cases, name, _from("10.0.0.5", "198.51.100.4"))
    with pytest.raises(gr.Error, match="under 2 other names"):
        cases.next_case("a3", None, None, _from("10.0.0.5", "198.51.100.4"), None)
    _take(cases, "b1", _from("10.0.0.5", "198.51.100.4, 203.0.113.7"))  # another client


def test_the_lease_bound_is_a_setting_for_made_up_names_only() -> None:
    assert StudioSettings.from_env({}).leases_per_address == 4
    assert StudioSettings.from_env({"ADASAM_LEASES_PER_ADDRESS": "10"}).lease_limit == 10
    with pytest.raises(ConfigError, match="ADASAM_LEASES_PER_ADDRESS"):
        StudioSettings.from_env({"ADASAM_LEASES_PER_ADDRESS": "0"})
    assert StudioSettings(identity="password", users=USERS).lease_limit is None  # no made-up names


def test_parallel_presses_from_one_address_cannot_pass_the_bound_together() -> None:
    import threading
    import time

    from studio.address_leases import AddressLeases

    leases = AddressLeases()
    held: set[str] = set()
    lock = threading.Lock()
    refused: list[str] = []

    def press(name: str) -> None:
        try:
            with leases.reserve("198.51.100.4", name, 3, lambda names: held & set(names)):
                time.sleep(0.005)  # the walk's transaction: long enough for others to check
                with lock:
                    held.add(name)  # the walk leased a case to ``name``
        except StudioError:
            refused.append(name)

    threads = [threading.Thread(target=press, args=(f"n{i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(held) == 3 and len(refused) == 9


# -- the upload cache -----------------------------------------------------------------------------
def test_an_upload_is_deleted_from_the_cache_as_soon_as_it_is_read(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    upload = root / "0a1b2c" / "DOE_JOHN.dcm"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"DICM-bytes")
    assert take_upload(upload, root) == b"DICM-bytes"
    assert not upload.exists() and not upload.parent.exists()
    outside = tmp_path / "example.png"
    outside.write_bytes(b"x")
    assert take_upload(outside, root) == b"x" and outside.exists(), "never outside the cache"
    assert not discard_upload(root, root) and root.exists()


def test_start_up_sweeps_what_a_crash_left_in_the_cache(tmp_path: Path) -> None:
    root = tmp_path / STUDIO_CACHE_NAME
    for name in ("a1/DOE.dcm", "b2/c3/x.png", "stray.tmp"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"PHI")
    assert sweep_upload_cache(root) == 3
    assert list(root.iterdir()) == []
    assert sweep_upload_cache(tmp_path / "missing") == 0


def test_a_shared_cache_folder_loses_only_gradios_upload_folders(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"  # e.g. GRADIO_TEMP_DIR=/tmp set by an administrator
    upload = shared / ("ab" * 32) / "DOE_JOHN.dcm"
    others = [shared / "someone-elses.txt", shared / "cafe" / "x.bin", shared / ("ab" * 31)]
    for path in (upload, *others):
        target = path if path.suffix else path / "f"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"x")
    assert sweep_upload_cache(shared) == 1
    assert not upload.exists() and all(p.exists() for p in others)


# -- time budget -----------------------------------------------------------------------------------
def test_a_request_over_its_time_budget_stops_before_the_next_step() -> None:
    clock = FakeClock()
    deadline = Deadline(60, clock=clock)
    deadline.check("decoding", "the pipeline")
    clock.now += 61
    with pytest.raises(TimeBudgetError, match="61 s for decoding, more than its 60 s budget"):
        deadline.check("decoding", "the pipeline")
    with pytest.raises(ValueError):
        Deadline(0)


def test_the_api_predict_stops_when_decoding_used_the_budget(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.studio.test_handlers import Studio

    clock = FakeClock()
    monkeypatch.setattr("studio.api_handlers.Deadline", lambda s: Deadline(s, clock=clock))
    studio = Studio(services)
    original = studio.cases.open_upload

    def slow_open(*args: object, **kwargs: object) -> object:
        clock.now += services.settings.request_seconds + 1
        return original(*args, **kwargs)

    monkeypatch.setattr(studio.cases, "open_upload", slow_open)
    ran: list[object] = []
    monkeypatch.setattr(studio.segment, "run_state", lambda *a: ran.append(a))
    with pytest.raises(gr.Error, match="budget"):
        studio.api.predict(str(CT_SMALL), "custom", "", -1, "")
    assert ran == []  # the pipeline never started


def test_loading_a_case_records_its_time_for_the_chained_run(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(
        "studio.case_handlers.time", SimpleNamespace(time=lambda: 0.0, monotonic=clock)
    )
    cases = CaseHandlers(services)
    original = cases._read

    def slow_read(*args: object, **kwargs: object) -> object:
        clock.now += 7.0  # decoding takes 7 s
        return original(*args, **kwargs)

    monkeypatch.setattr(cases, "_read", slow_read)
    assert cases.load_upload(str(CT_SMALL), 2, "custom")["state"].load_seconds == 7.0


def test_the_ui_run_after_a_load_stops_when_the_load_used_the_budget(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.studio.test_handlers import Studio

    studio = Studio(services)
    state = studio.cases.load_upload(str(CT_SMALL), 2, "custom")["state"]
    budget = services.settings.request_seconds
    ran: list[object] = []
    real_run = studio.segment.run_state
    monkeypatch.setattr(studio.segment, "run_state", lambda *a: ran.append(a) or real_run(*a))
    slow = replace(state, load_seconds=budget + 1.0)
    with pytest.raises(gr.Error, match=f"more than its {budget} s budget") as refused:
        studio.segment.run_loaded(slow, "custom", ["liver"])
    assert "loading the case" in str(refused.value.message)
    assert "Press Run" in str(refused.value.message)
    assert ran == [], "the pipeline never started (no state came back: nothing half-stored)"
    after_run = studio.segment.run(slow, "custom", ["liver"])  # Run: a request of its own
    assert after_run["state"].work is not None and len(ran) == 1
    quick = studio.segment.run_loaded(replace(state, load_seconds=1.0), "custom", ["liver"])
    assert quick["state"].work is not None and len(ran) == 2


def test_a_propagation_over_the_time_budget_stops_and_says_why(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adasam.propagate import PropagationConfig
    from studio.volume_handlers import VolumeHandlers
    from studio.volume_view import budget_message
    from tests.studio.test_volume_handlers import write_series

    h = VolumeHandlers(services)
    key = services.catalog.default().key
    session = h.open([str(p) for p in write_series(tmp_path / "in", depth=8)], key, "liver")
    h.segment(session, 4)
    h.accept(session, 4)
    ticks = iter(range(1000))  # the budget's clock advances one second per reading
    monkeypatch.setattr(
        "studio.volume_handlers.Deadline",
        lambda s: Deadline(2, clock=lambda: float(next(ticks))),
    )
    loose = PropagationConfig(min_score=0.0, min_area=1, max_growth=1e6, batch_size=4)
    report = h.propagate(session, 4, loose)
    assert report.timed_out and report.propagated == [5, 6]
    assert session.annotation.status[5:] == ["propagated", "propagated", "none"]
    assert session.annotation.status[:4] == ["none"] * 4, "the run ended: nothing downwards"
    text = budget_message(report, 2)
    assert "2 slices" in text and "2 s time budget" in text and "nothing is saved" in text


def test_a_volume_upload_leaves_the_cache_and_burned_in_series_are_refused(
    services: Services, tmp_path: Path
) -> None:
    from adasam.errors import IngestError
    from adasam.phantoms import generate_volume, volume_to_dicom_series
    from studio.volume_handlers import VolumeHandlers

    vol = generate_volume("liver-ct", 41, 0, depth=3, size=64, z_range=(0.1, 0.5))
    root = tmp_path / "upload-cache"
    services.upload_root = root

    def upload(extra: dict[str, object]) -> list[str]:
        paths = []
        for k, data in enumerate(volume_to_dicom_series(vol.image, vol.spacing, "CT", extra=extra)):
            path = root / f"u{k}" / f"DOE_JOHN_{k}.dcm"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            paths.append(str(path))
        return paths

    h = VolumeHandlers(services)
    key = services.catalog.default().key
    with pytest.raises(IngestError, match="burned-in annotation"):
        h.open(upload({"BurnedInAnnotation": "YES"}), key, None)
    assert list(root.rglob("*")) == []  # refused, and still nothing left in the cache
    with pytest.raises(StudioError, match="segments"):
        h.open(upload({}), key, "spleen")
    assert list(root.rglob("*")) == []
    services.settings = replace(services.settings, allow_burned_in=True)
    session = h.open(upload({"BurnedInAnnotation": "YES"}), key, None)
    assert session.volume.shape == (3, 64, 64) and list(root.rglob("*")) == []
