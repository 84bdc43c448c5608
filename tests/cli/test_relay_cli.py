"""`moqmls relay` as a real process: listens, relays, sends GOAWAY on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from moqmls.cli import COMMANDS, build_parser
from moqmls.cli import relay as relay_cli
from moqmls.moqt.client import connect


def _parse(*argv: str) -> object:
    command = next(c for c in COMMANDS if c.name == "relay")
    return build_parser(command).parse_args(list(argv))


def test_options_build_a_config() -> None:
    args = _parse(
        "--retain",
        "keypackage=6h",
        "--retain",
        "grp/commit=groups:8",
        "--auth-token",
        "t1=alice,bob",
        "--default-retention",
        "-",
    )
    config = relay_cli.build_config(args)  # type: ignore[arg-type]
    rules = {r.suffix: (r.max_age, r.max_groups) for r in config.retention}
    assert rules == {(b"keypackage",): (6 * 3600.0, None), (b"grp", b"commit"): (None, 8)}
    assert config.default_max_age is None
    assert config.auth_tokens == {b"t1": frozenset({b"alice", b"bob"})}


def test_alpn_order_defaults_to_both_drafts() -> None:
    config = relay_cli.build_config(_parse())  # type: ignore[arg-type]
    assert config.alpns == ("moqt-18", "moqt-22")
    config = relay_cli.build_config(_parse("--alpn", "moqt-22,moqt-18"))  # type: ignore[arg-type]
    assert config.alpns == ("moqt-22", "moqt-18")
    config = relay_cli.build_config(_parse("--alpn", "moqt-22"))  # type: ignore[arg-type]
    assert config.alpns == ("moqt-22",)


@pytest.mark.parametrize("spec", ["moqt-17", "", "moqt-18,moqt-18"])
def test_bad_alpn_is_reported(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--alpn", spec, "--listen", "127.0.0.1:0")
    assert relay_cli.run(args) == 1  # type: ignore[arg-type]
    assert "--alpn" in capsys.readouterr().err


async def test_relay_process_serves_and_goes_away(tmp_path: Path) -> None:
    cert = tmp_path / "relay.pem"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "moqmls",
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--write-cert",
        str(cert),
        "--alpn",
        "moqt-22,moqt-18",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("moqmls relay listening on moqt://127.0.0.1:")
        url = line.split()[-1]
        trust = cert.read_bytes()
        pub_c = await connect(url, verify=trust)
        sub_c = await connect(url, verify=trust)
        assert (pub_c.alpn, sub_c.alpn) == ("moqt-22", "moqt-22")  # --alpn order decides
        stream = await sub_c.subscribe_tracks(("g", "commit"))
        pub = await pub_c.publish(("g", "commit"), "alice")
        await pub.write(3, 0, b"commit-3")
        got = await stream.get(5)
        assert (got.track_name, got.group_id, got.payload) == (b"alice", 3, b"commit-3")
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(sub_c.goaway.wait(), 5)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
        await pub_c.close()
        await sub_c.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_bad_auth_token_spec_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parse("--auth-token", "no-equals-sign", "--listen", "127.0.0.1:0")
    assert relay_cli.run(args) == 1  # type: ignore[arg-type]
    assert "TOKEN=NAME" in capsys.readouterr().err
