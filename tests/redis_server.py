"""A real redis-server for the tests, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

INSTALL = "install redis-server (Debian: apt-get install redis-server) to run the Redis tests"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True
        )
        return done.stdout.strip()


def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("BRAKES_REQUIRE_REDIS"):
            pytest.fail(f"redis-server is missing: {INSTALL}")
        pytest.skip(INSTALL)
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


class RedisCluster:
    """Three redis-server masters on loopback, joined as one Redis Cluster."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.nodes = [RedisServer(free_port()) for _ in range(3)]
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.process = subprocess.Popen(
                [
                    *("redis-server", "--port", str(node.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--cluster-enabled", "yes"),
                    *("--cluster-config-file", f"nodes-{node.port}.conf"),
                    *("--dir", self.directory),
                    # The cluster bus port: port + 10000 by default, which
                    # may be out of range or taken.
                    *("--cluster-port", str(free_port())),
                ],
                stdout=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 20
        while any(node.cli("PING") != "PONG" for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        subprocess.run(
            [
                *("redis-cli", "--cluster", "create"),
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            capture_output=True,
            check=True,
        )
        while not all(self.settled(node) for node in self.nodes):
            if time.monotonic() > deadline + 40:
                raise RuntimeError("the cluster did not form")
            time.sleep(0.05)

    def settled(self, node: RedisServer) -> bool:
        """The node sees the whole cluster up, all three masters."""
        info = node.cli("CLUSTER", "INFO")
        return "cluster_state:ok" in info and "cluster_known_nodes:3" in info

    def node_of(self, slot: int) -> RedisServer:
        for node in self.nodes:
            for line in node.cli("CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for part in fields[8:]:
                    first, _, last = part.partition("-")
                    if first.isdigit() and int(first) <= slot <= int(last or first):
                        return node
        raise LookupError(f"no node serves slot {slot}")

    def move_slot(self, slot: int, to: RedisServer) -> None:
        """Moves `slot` and its keys to `to`, as a resharding does: clients
        that ask the old owner are then answered MOVED."""
        source = self.node_of(slot)
        source_id, target_id = source.cli("CLUSTER", "MYID"), to.cli("CLUSTER", "MYID")
        to.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        source.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        while keys := source.cli("CLUSTER", "GETKEYSINSLOT", str(slot), "100").split():
            source.cli("MIGRATE", "127.0.0.1", str(to.port), "", "0", "5000", "KEYS", *keys)
        for node in self.nodes:
            node.cli("CLUSTER", "SETSLOT", str(slot), "NODE", target_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def redis_cluster(directory: str) -> Iterator[RedisCluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if os.environ.get("BRAKES_REQUIRE_REDIS"):
            pytest.fail(f"redis-server is missing: {INSTALL}")
        pytest.skip(INSTALL)
    cluster = RedisCluster(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
