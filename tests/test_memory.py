"""Bounded memory on large rosters (issue 13, item 11): validation a chunk of rows at a time
finds what validation of the whole finds; keys and distinct values without a Python object per
row; planning turns rows into Python objects a batch of sites at a time. The million-row
figures are `benchmarks/memory_bench.py`'s."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import random
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts import normalize, reconcile, schema
from bulk_contacts import plan as plan_module
from bulk_contacts.guards import InvalidRows, StaleSite, guarded
from bulk_contacts.models import Contact
from bulk_contacts.normalize import factorized
from bulk_contacts.outputs import json_text
from bulk_contacts.plan import (
    ACTIONS,
    Change,
    Changes,
    InvalidRow,
    Plan,
    RowWarning,
    SitePlan,
    count_of,
)
from bulk_contacts.reconcile import PlanOptions
from bulk_contacts.terminal import CHANGE_LINE_LIMIT, plan_text

from .planning import DEALER, Model, plan_for, roster
from .thorough import examples

MESSY = [
    ["101", "a1", "Ann", "Lee", "(202) 555-0143", "ann@example.com", "", ""],
    ["101", "a2", "Bo", "", "2.02555E+09", "bo@@example.com", "", ""],
    ["0101", "a1", "Cy", "Ray", "+44 20 7946 0958", "cy@example.com", "", ""],
    ["102", "a3", "Di", "Fox", "(202) 555-0143", "", "upsert", ""],
    ["", "a4", "Ed", "Ng", "442079460958", "ed@exämple.com", "", ""],
    ["102", "a5", "", "Oh", "2025550143.0", "x", "frobnicate", "12x"],
    ["101", "a6", "=HYPERLINK(1)", "Po", "202-555-0199 ext 12", "po@example.com", "delete", ""],
    ["103", "a7", "Qi", "Ru", "", "", "", ""],
    ["102", "a8", "Sy", "Tu", "1/2/2024", "sy@example.com", "", ""],
    ["101", "a2", "Uv", "Wx", "+1 202 555 0143", "UV@Example.COM", "", ""],
    ["103", "a9", "Yz", "Ab\x1b[2J", "(415) 555-0100", "yz@example.com", "", ""],
]


def _validated(rows: list[list[str]]):
    validated = roster(rows)
    return validated.issues, validated.rows


def test_validation_a_chunk_of_rows_at_a_time_finds_what_whole_validation_finds(
    monkeypatch,
) -> None:
    rows = MESSY * 3  # repeats across chunks: duplicates are found across them too
    issues, normalized = _validated(rows)
    assert {i.code for i in issues} >= {"invalid_email", "duplicate_external_id", "no_site"}
    monkeypatch.setattr(normalize, "CHUNK_ROWS", 4)
    monkeypatch.setattr(schema, "CHUNK_ROWS", 4)
    chunked_issues, chunked_rows = _validated(rows)
    assert chunked_issues == issues
    pd.testing.assert_frame_equal(chunked_rows, normalized)


def test_site_keys_are_numbers_shared_by_rows_that_name_a_site_the_same_way() -> None:
    rows = roster(
        [
            ["101", "a1", "Ann", "Lee", "", "", "", ""],
            ["0101", "a2", "Bo", "Lee", "", "", "", ""],  # site_id 0101 is 101
            ["102", "a3", "Cy", "Lee", "", "", "", ""],
            ["101", "a4", "Di", "Lee", "", "", "", ""],
        ]
    ).rows
    keys = schema.site_keys(rows)
    assert keys.dtype == np.int64  # 8 bytes a row, not the site columns' text joined
    assert keys.tolist()[0] == keys.tolist()[1] == keys.tolist()[3] != keys.tolist()[2]


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(["", "a", "b", "é", "a ", "0", "00"])),
        max_size=40,
    ),
    st.integers(1, 3),
)
def test_repeated_pairs_are_pandas_duplicated_by_sorting(pairs, pieces) -> None:
    index = pd.RangeIndex(2, len(pairs) + 2)
    site = pd.Series([s for s, _ in pairs], index=index, dtype="int64")
    cut = len(pairs) // pieces or 1
    values = pd.concat(  # several Arrow chunks, as a file read in pieces has
        [
            pd.Series([v for _, v in pairs[start : start + cut]], dtype="str")
            for start in range(0, max(len(pairs), 1), cut)
        ],
        ignore_index=True,
    )
    values.index = index
    frame = pd.DataFrame({"site": site, "value": values})
    expected = frame[(frame["value"] != "") & frame.duplicated(keep=False)]
    keys = schema.repeated_pairs(site, values)
    assert keys.index.tolist() == expected.index.tolist()
    pairs_of = list(zip(expected["site"], expected["value"], strict=True))
    for i, one in enumerate(keys.tolist()):
        for j, other in enumerate(keys.tolist()):
            assert (one == other) == (pairs_of[i] == pairs_of[j])


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.sampled_from(["", "a", "b", "é", "a ", None]), max_size=30), st.integers(1, 3))
def test_factorized_is_pandas_factorize_without_a_python_string_per_value(values, pieces) -> None:
    cut = len(values) // pieces or 1
    series = pd.concat(
        [pd.Series(values[i : i + cut], dtype="str") for i in range(0, max(len(values), 1), cut)],
        ignore_index=True,
    )
    codes, uniques = factorized(series)
    expected_codes, expected_uniques = pd.factorize(series, use_na_sentinel=False)
    assert codes.tolist() == expected_codes.tolist()
    assert [None if v is None else v for v in uniques.to_pylist()] == [
        None if pd.isna(v) else v for v in expected_uniques
    ]


def _creates(count: int, sites: int):
    rng = random.Random(count)
    names = ["Ann", "Bo", "Cy", "Di", "Ed"]
    rows = [
        [
            str(100 + n % sites),
            f"C{n:07d}",
            rng.choice(names),
            rng.choice(names),
            f"(202) 555-{n % 10_000:04d}",
            f"p{n}@example.com",
            "",
            "",
        ]
        for n in range(count)
    ]
    return roster(rows), Model({100 + s: [] for s in range(sites)})


def test_planning_turns_rows_into_objects_a_batch_of_sites_at_a_time(monkeypatch) -> None:
    validated, model = _creates(300, 30)
    whole = plan_for(validated, model)
    sizes = []
    views = reconcile._row_views

    def spy(rows):
        sizes.append(len(rows))
        return views(rows)

    monkeypatch.setattr(reconcile, "VIEW_ROWS", 40)
    monkeypatch.setattr(reconcile, "_row_views", spy)
    batched = plan_for(validated, model)
    assert len(sizes) > 1 and max(sizes) < 40 + 10  # a batch, then the site that fills it
    assert sum(sizes) == 300
    assert batched.to_dict()["sites"] == whole.to_dict()["sites"]
    assert [c.sort_key for c in batched.changes] == [c.sort_key for c in whole.changes]


def test_planning_many_creates_holds_about_the_changes_alone(monkeypatch) -> None:
    """Before, every row became a RowView at once (850 bytes a row) on top of the changes; then
    each change was an object with its strings (about 350 bytes a create, 620 at the peak); now
    a plan's changes are columns (about 120 bytes a create, Arrow's text included)."""
    import pyarrow as pa

    validated, model = _creates(20_000, 200)
    monkeypatch.setattr(reconcile, "VIEW_ROWS", 2_000)
    arrow = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        plan = plan_for(validated, model)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    held += pa.total_allocated_bytes() - arrow
    assert plan.summary()["create"] == 20_000
    assert peak / 20_000 < 300, f"{peak / 20_000:.0f} bytes a row at the peak"
    assert held / 20_000 < 200, f"{held / 20_000:.0f} bytes a row held by the plan"
    assert all(isinstance(site.changes, Changes) for site in plan.sites)
    creates = plan.creates
    assert creates[0].before is creates[1].before == {}  # one empty dict, shared


def _plain(monkeypatch):
    """Plans made with their changes held as lists of `Change`s (as before columns)."""
    monkeypatch.setattr(Changes, "packed", lambda sites: [c for _, _, c in sites])


@pytest.mark.parametrize("prune", [False, True])
def test_a_plan_held_as_columns_is_the_plan_held_as_objects(monkeypatch, prune) -> None:
    """Every field of every change, the summary, the plan file and the terminal's lines are
    the same whichever way the changes are held; each read makes new, equal changes."""
    held = [
        Contact(7, "Ann", "Lee", "a1", "+12025550143", "ann@example.com"),
        Contact(8, "Old", "Timer", "gone", "+12025550100"),
        Contact(9, "Por", "Tal", None, "+12025550101"),
        Contact(10, "Dee", "Lete", "a6"),
    ]
    rows = [
        ["101", "a1", "Ann", "Leigh", "(202) 555-0143", "", "", ""],  # an update
        ["101", "a6", "Dee", "Lete", "", "", "delete", "10"],
        ["101", "b1", "Zoë", "Ünïcode", "", "z@example.com", "", ""],
        ["102", "c1", "Cy", "Ray", "+44 20 7946 0958", "", "", ""],
        ["103", "c2", "Di", "Fox", "2025550199", "di@example.com", "", ""],
        ["103", "c3", "Ed", "Fox", "2025550198", "", "", ""],
        *MESSY[4:6],  # invalid: not planned
    ]
    validated = roster(rows)
    model = Model({101: held, 102: [], 103: []})
    columns = plan_for(validated, model, prune=prune, skip_invalid=True, blanks="clear")
    monkeypatch.setattr(reconcile, "VIEW_ROWS", 3)  # several sites, several batches
    batched = plan_for(validated, model, prune=prune, skip_invalid=True, blanks="clear")
    _plain(monkeypatch)
    objects = plan_for(validated, model, prune=prune, skip_invalid=True, blanks="clear")
    assert {c.action for c in objects.changes} == {"create", "update", "delete"}
    assert any(isinstance(site.changes, Changes) for site in columns.sites)
    assert not any(isinstance(site.changes, Changes) for site in objects.sites)
    for plan in (columns, batched):
        assert [dataclasses.asdict(c) for c in plan.changes] == [
            dataclasses.asdict(c) for c in objects.changes
        ]
        assert plan.changes == objects.changes and objects.changes == plan.changes
        assert plan.sites == objects.sites
        assert plan.summary() == objects.summary()
        plan.created_at = objects.created_at
        assert plan.to_dict() == objects.to_dict() and plan.to_json() == objects.to_json()
        # written a site at a time, as the whole body would be, checksum and all
        assert plan.to_json() == json_text(objects.to_dict(), indent=1)
        assert plan_text(plan, verbose=True) == plan_text(objects, verbose=True)
        assert plan_text(plan) == plan_text(objects)
        read = Plan.from_dict(json.loads(plan.to_json()))
        assert read.changes == plan.changes
        for site, other in zip(plan.sites, objects.sites, strict=True):
            assert len(site.changes) == len(other.changes)
            assert [site.count(a) for a in ACTIONS] == [other.count(a) for a in ACTIONS]
            if site.changes:
                assert site.changes[0] == other.changes[0] and site.changes[-1] == other.changes[-1]
                assert site.changes[1:3] == list(other.changes)[1:3]
                assert site.changes[0] is not site.changes[0]  # made anew, equal
        assert pickle.loads(pickle.dumps(plan)).sites == objects.sites
        assert copy.deepcopy(plan).sites == objects.sites


change_values = st.one_of(st.none(), st.text(max_size=6))


@st.composite
def changes(draw, site: tuple[int, int] = (1, 101), ordered: bool = True):
    keys = draw(st.lists(st.sampled_from(plan_module._AFTER_KEYS), unique=True))
    if ordered:
        keys = [k for k in plan_module._AFTER_KEYS if k in keys]  # in order: held in slots
    return Change(
        draw(st.sampled_from(ACTIONS)),
        *site,
        draw(st.one_of(st.none(), st.integers(0, 2**40))),
        draw(change_values),
        draw(st.one_of(st.none(), st.integers(0, 2**40))),
        draw(st.sampled_from([{}, {"first_name": "Ann", "email": None}])),
        {key: draw(change_values) for key in keys},
        draw(st.sampled_from(["roster", "prune", "action=delete", ""])),
    )


def site_of(found: list[Change]) -> tuple[int, int]:
    """The (dealer, site) of a site's changes (any, for none)."""
    return (found[0].dealer_id, found[0].site_id) if found else (1, 101)


site_keys = st.tuples(st.integers(1, 3), st.integers(100, 103))


@settings(max_examples=examples(30), deadline=None)
@given(
    st.lists(site_keys.flatmap(lambda key: st.lists(changes(key), max_size=5)), max_size=4),
    st.lists(changes((2, 7)), max_size=2),
    st.lists(changes(ordered=False), max_size=2),
)
def test_changes_held_as_columns_read_as_the_changes_they_were(sites, stray, odd) -> None:
    """Any changes of any sites: as columns, or as the list they were when columns cannot hold
    them (a change of another site; in a batch with an after whose keys are in another
    order)."""
    given = [(*site_of(found), list(found)) for found in sites] + [(1, 101, stray)] * bool(stray)
    packed = Changes.packed(given)
    for (_, _, expected), held in zip(given, packed, strict=True):
        assert len(held) == len(expected) and list(held) == expected and held == expected
        assert [count_of(held, a) for a in ACTIONS] == [count_of(expected, a) for a in ACTIONS]
        assert [dataclasses.asdict(c) for c in held] == [dataclasses.asdict(c) for c in expected]
        if expected:
            assert held[-1] == expected[-1] and held[1:] == expected[1:]
    assert [isinstance(held, Changes) for held in packed] == [c is not stray for _, _, c in given]
    unusual = [c for c in odd if isinstance(c._keys, dict)]
    first = [c for c in sites[0] if site_of([c]) == (1, 101)] if sites else []
    mixed = Changes.packed([(1, 101, [*first, *unusual])] if sites else [])
    assert all(isinstance(held, list) == bool(unusual) for held in mixed)


def test_a_compact_change_is_the_change_it_was_made_from() -> None:
    """`after` is held in slots, its keys once: every reader still sees the dict, the plan file
    and copies are the same, and an `after` with keys in another order stays as given."""
    after = {"external_contact_id": "a1", "first_name": "Ann", "email": None}
    change = Change("create", 1, 101, 2, "a1", None, {}, after, "roster")
    assert change.after == after and list(change.after) == list(after)
    assert change.after is not change.after  # a new dict each time: nothing changes the plan's
    assert dataclasses.asdict(change) == {
        "action": "create",
        "dealer_id": 1,
        "site_id": 101,
        "row": 2,
        "external_contact_id": "a1",
        "contact_id": None,
        "before": {},
        "after": after,
        "reason": "roster",
    }
    assert Change(**dataclasses.asdict(change)) == change
    assert pickle.loads(pickle.dumps(change)) == change == copy.deepcopy(change)
    assert dataclasses.replace(change, after={"email": "x"}).after == {"email": "x"}
    assert change != dataclasses.replace(change, after={**after, "email": "ann@example.com"})
    odd = {"email": "x", "first_name": "Bo"}  # not in the column table's order: kept as given
    assert list(Change("update", 1, 101, 3, "a2", 7, {}, odd).after) == ["email", "first_name"]
    other = Change("create", 1, 101, 4, "a3", None, {}, {**after, "external_contact_id": "a3"})
    assert other._keys is change._keys  # one key tuple for every create


def test_resolving_sites_makes_no_python_object_per_row_and_column() -> None:
    """Each way of naming a site is resolved once, duplicates are found by sorting: before,
    the four site columns became Python strings, and (site, id) pairs were counted (237 bytes
    a row at the peak)."""
    validated, model = _creates(20_000, 200)
    tracemalloc.start()
    try:
        placement, issues = reconcile.resolve_sites(validated, model.sites, DEALER)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(placement) == 20_000 and not issues
    assert peak / 20_000 < 150, f"{peak / 20_000:.0f} bytes a row at the peak"
    # The rows' sites as number arrays: 70 bytes a row as a dict of Python ints, now 25.
    assert held / 20_000 < 40, f"{held / 20_000:.0f} bytes a row held"


def test_the_rows_sites_read_as_the_mapping_they_were() -> None:
    placement = reconcile.Placement(np.array([5, 3, 9]), np.array([1, 0, 1]), [(1, 10), (1, 20)])
    expected = {5: (1, 20), 3: (1, 10), 9: (1, 20)}  # in row order as given
    assert placement == expected and list(placement.items()) == list(expected.items())
    assert list(placement.values()) == list(expected.values())
    assert placement.get(4) is None and placement.get("5") is None and 3 in placement
    assert placement.sites_of([3, 4, 9, 0]) == [(1, 10), None, (1, 20), None]
    assert reconcile.sites_of(expected, [3, 4]) == [(1, 10), None]


def test_a_contact_on_the_site_is_still_protected_by_a_row_naming_it() -> None:
    """The names the rows give are built when first needed (never for sites without
    contacts), and still protect a contact from --prune."""
    held = Contact(7, "Old", "Timer", "a1", "+12025550143")
    validated = roster(
        [
            ["101", "a1", "Old", "Timer", "bad phone", "", "", ""],  # invalid: not planned
            ["101", "b2", "New", "Comer", "2025550144", "", "", ""],
        ]
    )
    plan = plan_for(validated, Model({101: [held]}), prune=True, skip_invalid=True)
    assert [c.action for c in plan.changes] == ["create"]
    assert [(item.contact_id, item.why) for item in plan.sites[0].listed] == [(7, "protected")]


def test_the_plan_file_written_a_site_at_a_time_is_the_whole_body(tmp_path) -> None:
    """`Plan.write` streams the file; the text and its checksum are `json_text` of `to_dict`
    (every optional part, no site at all, characters a terminal would act on), and it reads
    back."""
    site = SitePlan(1, 101, "Café \u202e", "AC-1", None, "f" * 32, 2, unchanged=1)
    site.changes = [
        Change("create", 1, 101, 2, "a\x1b1", None, {}, {"external_contact_id": "a\x1b1"}),
        Change("delete", 1, 101, None, "b", 7, {"first_name": "B\u0085"}, {}, "prune"),
    ]
    refused = dataclasses.replace(site, site_id=102, refusal=StaleSite(2, 3), seen=[7], names=[])
    full = Plan(
        [site, refused],
        [InvalidRow(5, "x", ("email: bad",))],
        {"prune": True},
        "roster.xlsx",
        [InvalidRows(1)],
        "2026-01-01T00:00:00Z",
        warnings=[RowWarning(3, "phone_number", "no_phone", "no phone")],
        not_sent={2: "+1 202"},
        derived={3: "generated"},
        sheets=("Contacts", ""),
    )
    for plan in (Plan([]), Plan([site], source="r.csv"), full):
        assert plan.to_json() == json_text(plan.to_dict(), indent=1)
        path = tmp_path / f"plan{len(plan.sites)}.json"
        plan.write(path)
        assert path.read_text(encoding="utf-8") == plan.to_json()
        assert Plan.read(path).to_dict() == plan.to_dict()


def test_counting_and_printing_a_plan_make_only_the_changes_shown(monkeypatch) -> None:
    """The summary, the counts, the guards and the verdict read the columns; the terminal
    makes only the changes it prints (it made a line for every change, then cut them)."""
    validated, model = _creates(3_000, 3)
    plan = plan_for(validated, model)
    made = []
    make = plan_module._held_change
    monkeypatch.setattr(plan_module, "_held_change", lambda *slots: made.append(1) or make(*slots))
    assert plan.summary()["create"] == 3_000 and len(plan.changes) == 3_000
    assert plan.exit_code(pending=True) == 3 and plan.sites[0].contacts_after == 1_000
    assert guarded(plan, PlanOptions(dealer_id=DEALER)).refusals == [] and not made
    lines = plan_text(plan)
    assert len(made) <= CHANGE_LINE_LIMIT
    assert any("more lines (-v prints all" in line for line, _ in lines)


def test_applying_makes_a_site_s_changes_only_when_the_site_starts(monkeypatch) -> None:
    """The apply queue made every change of every site when the run started (about 350 bytes
    each: 350 MB for a million); a site's changes are made when the workers run out of work,
    and the queue lets go of them as they are taken."""
    from bulk_contacts import apply as apply_module

    validated, model = _creates(3_000, 30)
    plan = plan_for(validated, model)
    sites = [site for site in plan.sites if site.changes]
    first, second = (list(site.changes) for site in sites[:2])
    made = []
    make = plan_module._held_change
    monkeypatch.setattr(plan_module, "_held_change", lambda *slots: made.append(1) or make(*slots))
    queue = apply_module._PhaseQueue(sites)
    assert not made  # no site started yet
    taken = [queue.take() for _ in range(100)]
    assert len(made) == 100  # the first site's changes, no other
    assert {number for number, _, _ in taken} == {0}
    assert [change for _, _, change in taken] == first
    assert [index for _, index, _ in taken] == list(range(100))
    number, index, change = queue.take()  # the first site is in flight: the next one starts
    assert (number, index, len(made)) == (1, 0, 200) and change == second[0]
    for _ in range(100):
        queue.done(0)
    assert 0 not in queue._phases and 0 not in queue._left  # done: nothing of it held


def test_the_changes_a_run_made_are_kept_for_the_verification_as_arrays() -> None:
    """For its verification, a run kept every change it made with its outcome (about 850 bytes
    a change); now a site's number, the change's index among its changes and the outcome's own
    values (about 40 bytes: a trace id, a uuid, as its 16 bytes), made into the same changes
    and outcomes a batch of sites at a time."""
    import uuid

    from bulk_contacts import apply as apply_module
    from bulk_contacts.results import Outcome

    validated, model = _creates(10_000, 100)
    plan = plan_for(validated, model)
    sites = [site for site in plan.sites if site.changes]
    made = [
        (number, index, change)
        for number, site in enumerate(sites)
        for index, change in enumerate(site.changes)
    ]
    random.Random(3).shuffle(made)  # as the workers finish them, sites interleaved
    outcomes = [
        Outcome(
            change.row,
            change.dealer_id,
            change.site_id,
            change.external_contact_id,
            change.action,
            "ok",
            50_000 + n,
            201 if n % 7 else None,
            "",
            "" if n % 1000 else "already done by another run",
            str(uuid.uuid4()) if n % 500 else ["", "not-a-uuid", str(uuid.uuid4()).upper()][n % 3],
            1 + n % 3,
            n % 1000 == 0,
        )
        for n, (_, _, change) in enumerate(made)
    ]
    done = apply_module._Done(sites)
    tracemalloc.start()
    try:
        for n, ((number, index, _), outcome) in enumerate(zip(made, outcomes, strict=True)):
            done.add(number, index, outcome, n % 2)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held / 10_000 < 50, f"{held / 10_000:.0f} bytes a change held"
    by_change = {
        (change.site_id, change.row): (change, outcome, n % 2)
        for n, ((_, _, change), outcome) in enumerate(zip(made, outcomes, strict=True))
    }
    batches = list(done.batches())
    assert len(batches) == 1 and done.site_count() == 100
    again = [entry for batch in batches for entry in batch]
    assert len(again) == 10_000
    assert [(c.site_id, c.row) for c, _, _ in again] == sorted(
        ((c.site_id, c.row) for c, _, _ in again), key=lambda key: key[0]
    )  # a site's changes together
    for change, outcome, generation in again:
        assert (change, outcome, generation) == by_change[(change.site_id, change.row)]


@pytest.mark.parametrize("chunk", [7, 1 << 20])
def test_a_saved_plan_is_read_a_site_at_a_time_as_it_was_written(
    tmp_path, monkeypatch, chunk
) -> None:
    """`Plan.read` parses the file a site at a time (it loaded the whole 420 MB of a million
    creates as one document): the same plan, its changes packed as columns a batch of sites at
    a time; a plan edited anywhere, its sites or what follows them, is refused before any site
    is used; the file reformatted (the same JSON) is the same plan; a file that is not a plan
    is told as before."""
    from bulk_contacts.errors import InputError

    monkeypatch.setattr(plan_module._JsonStream, "CHUNK", chunk)  # values across pieces
    monkeypatch.setattr(plan_module, "READ_AT_A_TIME", 100)
    validated, model = _creates(500, 10)
    plan = plan_for(validated, model)
    plan.warnings.append(RowWarning(3, "phone_number", "no_phone", "no phone"))
    plan.invalid.append(InvalidRow(9, "x", ("email: bad",)))
    path = tmp_path / "plan.json"
    plan.write(path)
    read = Plan.read(path)
    assert read.to_dict() == Plan.from_dict(json.loads(path.read_text())).to_dict()
    assert read.to_json() == plan.to_json() and read.checksum == plan.to_dict()["checksum"]
    assert all(isinstance(site.changes, Changes) for site in read.sites)
    creates = read.creates
    assert creates[0].before is creates[-1].before == {}  # one empty dict, shared
    body = json.loads(path.read_text())
    compact = tmp_path / "compact.json"
    compact.write_text(json.dumps(body, separators=(",", ":")))
    assert Plan.read(compact).to_json() == plan.to_json()
    edits = {
        "a change": lambda b: b["sites"][9]["changes"][-1]["after"].update(first_name="Eve"),
        "a warning": lambda b: b["warnings"][0].update(message="x"),
        "the options": lambda b: b["options"].update(prune=True),
        "a site dropped": lambda b: b["sites"].pop(),
    }
    for what, edit in edits.items():
        edited = json.loads(path.read_text())
        edit(edited)
        (tmp_path / "edited.json").write_text(json.dumps(edited, indent=1))
        with pytest.raises(InputError, match="edited after it was made"):
            Plan.read(tmp_path / "edited.json")
        assert what
    for text, message in [
        ("", "invalid JSON: Expecting value"),
        ("[1]", "not a plan file$"),
        ('{"format": "x", "sites": []}', "not a bulk-contacts plan"),
        (path.read_text()[:-40], "invalid JSON"),
        (path.read_text() + "{}", "invalid JSON: Extra data"),
        ('{"sites": [], "sites": 3}', "the key 'sites' appears twice"),
    ]:
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(InputError, match=message):
            Plan.read(tmp_path / "bad.json")
    broken = json.loads(path.read_text())
    del broken["sites"][0]["fingerprint"]
    body = {k: v for k, v in broken.items() if k != "checksum"}
    broken["checksum"] = plan_module.checksum_of(body)
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    with pytest.raises(InputError, match=r"not a complete plan file \('fingerprint'\)"):
        Plan.read(tmp_path / "broken.json")
