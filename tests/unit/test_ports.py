"""Ports for servers the tests start: a cluster node's port and its bus port lie below the
kernel's ephemeral range, where no outgoing connection can take them between the pick and the
bind."""

from __future__ import annotations

import pytest

from devstack.ports import ephemeral_ports, free_port_with_bus


def test_a_node_port_and_its_bus_port_are_both_below_the_ephemeral_range():
    first_ephemeral = ephemeral_ports()[0]
    for _ in range(200):
        port = free_port_with_bus(10000)
        assert port >= 12000 and port + 10000 < first_ephemeral


def test_ports_already_handed_out_are_never_handed_out_again():
    taken: set[int] = set()
    for _ in range(50):
        port = free_port_with_bus(10000, taken=frozenset(taken))
        assert port not in taken and port + 10000 not in taken
        taken |= {port, port + 10000}


def test_without_room_below_the_ephemeral_range_it_says_so():
    with pytest.raises(OSError, match="no room"):
        free_port_with_bus(10000, low=ephemeral_ports()[0])
