"""The cluster under test: Contrib/testbed machines, each running flotillad as an enabled unit
of its own systemd (so that a machine powered off and booted again starts it), in the secure
mode: gossip keyring, mutual TLS between peers, HTTPS api_listen with ACL tokens.

`legacy=True` runs binaries built from a commit older than the secure mode (the run's
`--binaries`): plaintext peers and plain HTTP without tokens, the only mode such a build has.
It exists to show what the checker finds on old code (the leader-blip scenario before the lease)."""

import json
import os
import re
import subprocess
import time

from . import api

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TESTBED = os.path.join(REPO, "Contrib", "testbed")
CREDENTIALS = os.path.join(REPO, "Contrib", "cluster-credentials")
API_PORT = 7950
TLS_DIR = "/etc/flotilla/tls"

UNIT_TEMPLATE = """[Unit]
Description=Flotilla peer daemon (chaos run)
After=network-online.target dbus.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={daemon} --public-ip={ip} --voters={voters} --api-listen={ip}:{port} --api-tls-cert={tls}/peer.pem --api-tls-key={tls}/peer-key.pem --raft-snapshot-entries=256
Restart=always
RestartSec=200ms
WatchdogSec=10
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""

LEGACY_EXEC = "{daemon} --public-ip={ip} --voters={voters} --api-listen={ip}:{port} --raft-snapshot-entries=256"


class CommandFailed(Exception):
    pass


class Bed:
    def __init__(self, prefix, machines, docker=False, log=print, legacy=False):
        self.prefix = prefix
        self.legacy = legacy
        self.machines = machines
        self.docker = docker
        self.log = log
        self.addresses = {}
        self.machine_ids = {}
        self.pids = {}
        self.ca_file = None
        self.token = None
        self.bin_in_machine = None

    # Test bed commands -------------------------------------------------------------------

    def testbed(self, *args, check=True, timeout=120, capture=True):
        command = [TESTBED, "--prefix", self.prefix, *map(str, args)]
        proc = subprocess.run(command, capture_output=capture, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CommandFailed(f"{' '.join(command)}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
        return proc

    def exec(self, machine, *args, check=True, timeout=60):
        return self.testbed("exec", machine, *args, check=check, timeout=timeout)

    def pid(self, machine):
        """The machine's PID 1 as the host sees it (it changes when the machine boots again)."""
        proc = self.testbed("pid", machine, check=False, timeout=20)
        return proc.stdout.strip() if proc.returncode == 0 else None

    # Set-up ------------------------------------------------------------------------------

    def build(self):
        for product in ("flotillad", "flotillactl"):
            proc = subprocess.run(["swift", "build", "--product", product], cwd=REPO, capture_output=True, text=True)
            if proc.returncode != 0:
                raise CommandFailed(f"swift build --product {product}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
        bin_path = subprocess.run(["swift", "build", "--show-bin-path"], cwd=REPO, capture_output=True, text=True,
                                  check=True).stdout.strip()
        self.bin_in_machine = "/opt/flotilla-src/" + os.path.relpath(bin_path, REPO)

    def up(self):
        self.testbed("down", check=False, timeout=300)
        args = ["up", self.machines] + ([] if self.docker else ["--no-docker"])
        self.testbed(*args, timeout=300)
        for i in range(1, self.machines + 1):
            self.addresses[i] = self.testbed("ip", i).stdout.strip()
            self.machine_ids[i] = self.exec(i, "cat", "/etc/machine-id").stdout.strip()
            self.pids[i] = self.pid(i)
        ctl = self.bin_in_machine + "/flotillactl"
        if not self.legacy:
            self.testbed_credentials(ctl)
        voters = ",".join(self.addresses[i] for i in range(1, min(3, self.machines) + 1))
        for i in range(1, self.machines + 1):
            text = UNIT_TEMPLATE.format(daemon=self.bin_in_machine + "/flotillad", ip=self.addresses[i], voters=voters,
                                        port=API_PORT, tls=TLS_DIR)
            if self.legacy:
                legacy = LEGACY_EXEC.format(daemon=self.bin_in_machine + "/flotillad", ip=self.addresses[i],
                                            voters=voters, port=API_PORT)
                text = re.sub(r"^ExecStart=.*$", lambda _: "ExecStart=" + legacy, text, flags=re.M)
            self._install_unit(i, text)
        if self.legacy:
            self.wait_for_machines()
            return
        self.ca_file = os.path.join(self.state_dir(), "flotilla-ca.pem")
        with open(self.ca_file, "w") as out:
            out.write(self.exec(1, "cat", f"{TLS_DIR}/flotilla-ca.pem").stdout)
        self.wait_for_machines()
        client = self.client(1, token=None)
        status, body = client.request("POST", "/flotilla/v1/acl/bootstrap", timeout=20)
        if status != 200:
            raise CommandFailed(f"acl bootstrap: {status} {body}")
        self.token = body["secretID"]

    def _install_unit(self, machine, text):
        proc = subprocess.run([TESTBED, "--prefix", self.prefix, "exec", str(machine), "sh", "-c",
                               "cat > /etc/systemd/system/flotillad.service && systemctl daemon-reload && "
                               "systemctl enable --now flotillad.service"],
                              input=text, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise CommandFailed(f"m{machine}: installing flotillad.service: {proc.stderr.strip()}")

    def testbed_credentials(self, ctl):
        proc = subprocess.run([CREDENTIALS, "--prefix", self.prefix, ctl, str(self.machines)], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise CommandFailed(f"cluster-credentials: {proc.stderr.strip()}")

    def state_dir(self):
        path = os.path.join("/run/flotilla-chaos", self.prefix)
        os.makedirs(path, exist_ok=True)
        return path

    def wait_for_machines(self, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            try:
                status, body = self.client(1, token=None).request("GET", "/flotilla/v1/cluster", timeout=3)
                last = (status, body)
                if status in (200, 401) and self._machine_count() == self.machines:
                    return
            except api.Unknown as error:
                last = error
            time.sleep(0.5)
        raise CommandFailed(f"the cluster did not list {self.machines} machines within {timeout_s} s: {last}")

    def _machine_count(self):
        proc = self.exec(1, self.bin_in_machine + "/flotillactl", "list-machines", "--no-legend", check=False, timeout=20)
        return len([line for line in proc.stdout.splitlines() if line.strip()]) if proc.returncode == 0 else -1

    def client(self, machine, token="default"):
        return api.Client(self.addresses[machine], API_PORT, self.ca_file,
                          self.token if token == "default" else token)

    def leader(self):
        """The machine index of the leader as some reachable voter sees it, or None."""
        for machine in range(1, self.machines + 1):
            try:
                status, body = self.client(machine).request("GET", "/flotilla/v1/cluster", timeout=2)
            except api.Unknown:
                continue
            if status == 200 and body.get("leaderMachineID"):
                for i, machine_id in self.machine_ids.items():
                    if machine_id == body["leaderMachineID"]:
                        return i
        return None

    def voters(self):
        """The machine indexes of the Raft voters as some reachable peer sees them, or None.
        Not fixed at 1-3: the autopilot replaces a voter that stays down."""
        by_id = {v: i for i, v in self.machine_ids.items()}
        by_ip = {v: i for i, v in self.addresses.items()}
        for machine in range(1, self.machines + 1):
            try:
                status, body = self.client(machine).request("GET", "/flotilla/v1/cluster", timeout=2)
            except api.Unknown:
                continue
            if status == 200 and body.get("voters"):
                found = {by_id.get(v) or by_ip.get(v.rsplit(":", 1)[0]) for v in body["voters"]}
                if None not in found:
                    return found
        return None

    def daemon_main_pid(self, machine):
        proc = self.exec(machine, "systemctl", "show", "-p", "MainPID", "--value", "flotillad.service", check=False,
                         timeout=20)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def journal_traps(self, machine):
        """flotillad's crash reports in the machine's journal (kept since the machine's boot)."""
        proc = self.exec(machine, "sh", "-c", "journalctl -u flotillad --no-pager -o cat | "
                         "grep -E 'Fatal error|Crash|💣|Segmentation fault|Illegal instruction' | head -20",
                         check=False, timeout=60)
        return [line for line in proc.stdout.splitlines() if line.strip()]

    def daemon_restarts(self, machine):
        proc = self.exec(machine, "systemctl", "show", "-p", "NRestarts", "--value", "flotillad.service", check=False,
                         timeout=20)
        try:
            return int(proc.stdout.strip())
        except ValueError:
            return None

    def down(self):
        self.testbed("down", check=False, timeout=300)

    def describe(self):
        return json.dumps({"prefix": self.prefix, "machines": self.machines, "addresses": self.addresses,
                           "machine_ids": self.machine_ids})
