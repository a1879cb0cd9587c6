"""The directory spreads workspaces over hosts and moves few of them when hosts change."""

from __future__ import annotations

from collections import Counter

from actors.workspace.directory import host_names, owner_of


def test_every_replica_computes_the_same_owner() -> None:
    hosts = host_names(4)
    assert all(owner_of(f"w{i}", hosts) == owner_of(f"w{i}", list(hosts)) for i in range(100))


def test_workspaces_spread_over_all_hosts() -> None:
    counts = Counter(owner_of(f"workspace-{i}", host_names(4)) for i in range(4000))
    assert set(counts) == set(host_names(4))
    assert min(counts.values()) > 800


def test_adding_a_host_moves_only_its_share() -> None:
    before = {f"w{i}": owner_of(f"w{i}", host_names(4)) for i in range(2000)}
    after = {w: owner_of(w, host_names(5)) for w in before}
    moved = [w for w in before if before[w] != after[w]]
    assert all(after[w] == "ws-host:4" for w in moved)
    assert 250 < len(moved) < 600
