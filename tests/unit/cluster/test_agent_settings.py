"""AgentState's settings (agent.json): what the join was told that later starts need, the
node's address and the URL it joined at, each kept when the other is written."""

from __future__ import annotations

from pathlib import Path

from cluster.join import AgentState


def test_settings_keep_each_other_and_read_none_when_missing(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.node_ip() is None and state.join_url() is None
    state.update_settings(node_ip="", join_url="https://10.0.0.5:9345")
    assert state.node_ip() is None
    state.update_settings(node_ip="10.0.0.7")  # a renewal writes the address alone
    assert state.node_ip() == "10.0.0.7"
    assert state.join_url() == "https://10.0.0.5:9345"


def test_a_settings_file_of_before_or_broken_reads_as_empty(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    state.settings.write_text('{"node_ip": "10.0.0.7"}')  # written before join_url existed
    assert state.node_ip() == "10.0.0.7" and state.join_url() is None
    state.settings.write_text("[not json")
    assert state.node_ip() is None and state.join_url() is None
