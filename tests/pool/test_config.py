"""Pool settings checked before anything runs (docs/pools.md §9): members that share a directory
without one token key would give a badge another digest on each member (a session on each), so that
is an error; a pool without peers' trust, or a kiosk's pool without fingerprints or a CA, is a
warning that says what will (not) happen."""

from __future__ import annotations

from pathlib import Path

from tests.config.helpers import wradm, write

FP = "sha256:" + "ab" * 32


def check(tmp_path: Path, files: dict[str, str]) -> tuple[int, str]:
    res = wradm("--root", write(tmp_path, files), "check")
    return res.returncode, res.stderr


def test_members_sharing_a_directory_without_a_token_key_is_an_error(tmp_path: Path) -> None:
    code, err = check(
        tmp_path,
        {"etc/wayray/servers.toml": f'[server.lab]\npool = "lab"\npeers.fingerprints = ["{FP}"]\n'},
    )
    assert code == 1
    assert "servers.toml:3:1: error: server.lab.peers: the pool's members share the session directory" in err
    assert "but no token key: set peers.token_key_file" in err


def test_a_pool_without_trust_is_a_warning_on_either_side(tmp_path: Path) -> None:
    code, err = check(
        tmp_path,
        {
            "etc/wayray/servers.toml": '[server.lab]\npool = "lab"\n',
            "etc/wayray/client.toml": '[client]\npool = "lab"\n',
        },
    )
    assert code == 0, err
    assert "warning: server.lab.pool: pool 'lab' has no peers.fingerprints or peers.ca" in err
    assert "warning: client.pool: pool 'lab' without fingerprints or tls.ca" in err
    code, err = check(
        tmp_path,
        {
            "etc/wayray/servers.toml": (
                f'[server.lab]\npool = "lab"\npeers.fingerprints = ["{FP}"]\n'
                'peers.token_key_file = "/etc/wayray/pool.key"\n'
            ),
            "etc/wayray/client.toml": f'[client]\npool = "lab"\nfingerprints = ["{FP}"]\n',
        },
    )
    assert (code, err) == (0, ""), err


def test_an_etcd_directory_is_checked_and_needs_mutual_tls(tmp_path: Path) -> None:
    """`peers.directory` is "lan" or etcd://HOST:PORT,…; etcd is reached with a client certificate
    only, so the three TLS files are required; a weight is 0..10000."""
    code, err = check(
        tmp_path,
        {"etc/wayray/servers.toml": '[server.lab]\npool = "lab"\npeers.directory = "etcd://10.0.0.1"\n'},
    )
    assert code == 1
    assert "servers.toml:3:19: error: server.lab.peers.directory:" in err
    assert "needs a port from 1 to 65535" in err
    code, err = check(
        tmp_path,
        {
            "etc/wayray/servers.toml": (
                '[server.lab]\npool = "lab"\npeers.directory = "etcd://10.0.0.1:2379,10.0.0.2:2379"\n'
                'peers.etcd_ca = "/etc/wayray/etcd-ca.pem"\npeers.token_key_file = "/etc/wayray/pool.key"\n'
            )
        },
    )
    assert code == 1
    assert "error: server.lab.peers.directory: an etcd directory needs etcd's CA and this instance's " in err
    assert "set peers.etcd_cert, peers.etcd_key" in err
    code, err = check(
        tmp_path,
        {
            "etc/wayray/servers.toml": (
                '[server.lab]\npool = "lab"\nweight = 250\npeers.directory = "etcd://[2001:db8::1]:2379"\n'
                'peers.etcd_ca = "/etc/wayray/etcd-ca.pem"\npeers.etcd_cert = "/etc/wayray/etcd.pem"\n'
                'peers.etcd_key = "/etc/wayray/etcd.key"\npeers.token_key_file = "/etc/wayray/pool.key"\n'
            )
        },
    )
    assert (code, err) == (0, ""), err
    code, err = check(tmp_path, {"etc/wayray/servers.toml": '[server.lab]\npool = "lab"\nweight = -1\n'})
    assert code == 1 and "server.lab.weight: expected integer from 0 to 10000" in err, err
