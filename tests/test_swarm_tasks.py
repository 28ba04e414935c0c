"""A Swarm task that breaks the policy is a container like any other, and the daemon stops
it; what it logs and counts names the service, since the service is what the operator must
change (the orchestrator starts a new task after each stop). On both engines, each made a
single-node swarm manager on loopback ports for the test."""

from __future__ import annotations

import socket

from harness import IMAGE, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_authz_services import free_port
from test_operate import free_port as free_tcp_port
from test_operate import get, samples


def series_with_node_id(port: int, node_id: str) -> bool:
    _, body = get(f"http://127.0.0.1:{port}/metrics")
    series = [s for f in text_string_to_metric_families(body.decode()) for s in f.samples]
    return bool(series) and all(s.labels.get("swarm_node_id") == node_id for s in series)


def test_a_violating_task_is_stopped_and_named_by_its_service(dockerd, client, covenant_factory, journal):
    port = free_tcp_port()
    cov = covenant_factory(f"debug: no\nmetrics_address: ':{port}'\n")
    client.swarm.init(advertise_addr="127.0.0.1", listen_addr=f"127.0.0.1:{free_port()}",
                      data_path_port=free_port(socket.SOCK_DGRAM))
    try:
        service = client.services.create(
            IMAGE, ["sleep", "300"], name="covsvc-web",
            restart_policy={"Condition": "any", "Delay": 10**9, "MaxAttempts": 0})  # no --cap-drop: CV002
        kills = lambda: journal.entries(cov.ident, COVENANT_SERVICE="covsvc-web",  # noqa: E731
                                        COVENANT_ACTION="killed")
        wait_until(lambda: len(kills()) >= 2, 60, 0.5, "two tasks of the service to be stopped")
        first = kills()[0]
        assert first["MESSAGE"].endswith(": stopping container (a task of service covsvc-web)")
        assert first["CONTAINER_NAME"].startswith("covsvc-web.1.")
        assert first["COVENANT_CHECK"] == "CV002,CV003"
        assert len({e["CONTAINER_ID"] for e in kills()}) >= 2  # the orchestrator started a new task
        m = samples(f"http://127.0.0.1:{port}")
        assert m[("covenant_service_actions_total", (("action", "killed"), ("service", "covsvc-web")))] >= 2
        # a node that joined a swarm while the daemon ran: its series carry the node id
        node_id = client.info()["Swarm"]["NodeID"]
        wait_until(lambda: series_with_node_id(port, node_id), 40, 1, "the metrics to carry the node id")
        service.remove()
    finally:
        client.swarm.leave(force=True)
