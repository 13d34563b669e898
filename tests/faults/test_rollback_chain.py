"""Class 10: the rollback chain. Champion A (the template's), two registered versions promoted by hand
(B, then C), then rollbacks: C → B → A, and a third rollback exits 3 ("nothing to roll back to")."""

from __future__ import annotations

from faults.invariants import assert_invariants


def _champion(ws) -> str:
    champions = [v.version for v in ws.versions() if v.is_champion]
    assert len(champions) == 1, champions
    return champions[0]


def test_two_promotions_roll_back_to_the_first_champion_then_nothing(new_ws):
    ws = new_ws()
    a = _champion(ws)
    ws.run("train", "--no-promote", "--horizon-days", "60")
    ws.run("train", "--no-promote", "--horizon-days", "75")
    b, c = sorted(v.version for v in ws.versions() if v.version != a)
    assert _champion(ws) == a

    for version in (b, c):
        ws.run("models", "promote", version)
        assert _champion(ws) == version
        assert_invariants(ws)
    for expected in (b, a):
        done = ws.run("models", "rollback", "--json").json()
        assert (done["from_version"], done["to_version"]) == (c if expected == b else b, expected), done
        assert _champion(ws) == expected
        assert_invariants(ws)
    last = ws.run("models", "rollback", expect=3)
    lines = last.error_lines()
    assert len(lines) == 1 and "nothing to roll back to" in lines[0], last.describe()
    assert _champion(ws) == a

    runs = ws.run("runs", "list", "--json").json()
    changes = [(r["kind"], r["status"], r["details"].get("to")) for r in reversed(runs["runs"])]
    assert [ch for ch in changes if ch[1] == "success"] == [
        ("promote", "success", b),
        ("promote", "success", c),
        ("rollback", "success", b),
        ("rollback", "success", a),
    ], changes
    assert runs["totals"]["rollbacks"] == 2 and runs["totals"]["manual_promotions"] == 2, runs["totals"]
    ws.monitor()  # the loop goes on with A
    assert_invariants(ws)
