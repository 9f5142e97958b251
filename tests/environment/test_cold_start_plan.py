"""The cold start's one plan: what `bootstrap check` says the hydrate stage would do is what
`bootstrap run` then does, for every tier, on one environment through its life: a full
copy, the used part, the used part and its later part, the read-ahead, a reused copy, and
the volume (no copy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bootstrap.coldstart import packs, records, used_part
from bootstrap.environment import envstore
from bootstrap.stages import hydrate as hydrate_stage
from tests.environment import slowfs
from tests.environment.envboot import REPO, Boot, needs_root
from tests.environment.test_extmodule import MODULE_C, compile_shared, module_name
from tests.environment.test_slow_volume import (
    REQUIREMENTS,
    facts,
    pack_of,
    published,
    ran_from,
    run_boot,
    settings,
)
from tests.environment.wheelhouse import write_wheel

pytestmark = needs_root

BIG = "lib/big.bin"  # a large file: linked from a copy, its pages read ahead
STAGES = "stage_where:where,stage_imports:imports,stage_reads:read"


def said(env: dict[str, str]) -> str:
    """The plan `bootstrap check` prints for the hydrate stage."""
    result = subprocess.run([sys.executable, "-m", "bootstrap", "check", "--output", "json"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.stdout.startswith("{"), result.stderr
    (message,) = [m for m in json.loads(result.stdout)["messages"]
                  if m["id"] in (hydrate_stage.I001.id, hydrate_stage.I002.id)]
    text = f"{message['msg']} {message.get('hint', '')}"
    assert "; plan: " in text, text
    return text.split("; plan: ", 1)[1].split()[0]


def carried_out(result: Boot) -> str:
    """The plan a boot carried out, read from what it did, not from what it says it planned."""
    made = facts(result, "hydrate")
    if made["from"] == "volume":
        return "volume"
    if made["reused"]:
        base = "reuse"
    elif made["form"] == "full":
        base = "full"
    else:
        later = [e for e in result.named("hydrate.later") if e["status"] == "done"]
        base = "used+later" if later else "used"
    return base + ("+read-ahead" if made["prefetch_mb"] is not None else "")


def test_check_says_the_plan_run_carries_out_for_each_tier(tmp_path: Path, wheels: Path) -> None:
    house = tmp_path / "wheels"
    house.mkdir()
    for wheel in wheels.iterdir():
        (house / wheel.name).symlink_to(wheel)
    module = compile_shared(MODULE_C, tmp_path / module_name())  # a large extension module
    write_wheel(house, "bsdemo_ext", "1.0", {"bsdemo_ext/__init__.py": b"",
                                             f"bsdemo_ext/{module.name}": module.read_bytes()})
    backing = tmp_path / "backing"
    backing.mkdir()
    base = settings(tmp_path, house, backing, tmp_path / "unused",
                    BOOTSTRAP_REQUIREMENTS_TEXT=f"{REQUIREMENTS}\nbsdemo_ext",
                    BOOTSTRAP_EXTRA_STAGES=STAGES, BOOTSTRAP_TEST_IMPORT="bsdemo_a",
                    BOOTSTRAP_TEST_READ=f"{BIG}:{8 << 20}:{1 << 20}")
    built = run_boot(base | {"BOOTSTRAP_EXTRA_STAGES": "stage_where:where"})
    assert built.returncode == 0, built.output + built.stderr
    key, env_dir = published(backing)
    # the large file the read-ahead is for: the environment packed again with it
    (env_dir / BIG).write_bytes(os.urandom(16 << 20))
    marker = envstore.read_marker(env_dir) or {}
    pack_of(backing, key).unlink()
    marker[packs.RECORD] = packs.write(env_dir, timeout_s=60).to_dict()
    envstore.write_marker(env_dir, marker)

    seen: list[str] = []
    with slowfs.mounted(backing, tmp_path / "mnt", latency_ms=0.3) as volume:
        def boot(copies: str, **over: str) -> Boot:
            env = base | {"BOOTSTRAP_VOLUME": str(volume),
                          "BOOTSTRAP_HYDRATE_DIR": str(tmp_path / copies), **over}
            predicted = said(env)
            slowfs.drop_caches()
            result = run_boot(env)
            assert result.returncode == 0, result.output + result.stderr
            assert facts(result, "hydrate")["plan"] == predicted == carried_out(result), \
                (predicted, facts(result, "hydrate"))
            assert ran_from(result) == str(tmp_path / copies / key)
            seen.append(predicted)
            return result

        boot("copies1")  # nothing recorded: the full pack; records the used part, the pages
        boot("copies2")  # a new container: the used part, its pages read ahead
        # the used part forgotten; a boot that also imports the large module records again
        used_part.forget(env_dir, json.loads((env_dir / records.USED_PART).read_text())["file"])
        boot("copies3", BOOTSTRAP_TEST_IMPORT="bsdemo_a,bsdemo_ext.bigmod")
        boot("copies4", BOOTSTRAP_TEST_IMPORT="bsdemo_a,bsdemo_ext.bigmod")
        boot("copies4")  # the same container again: its copy reused
    # the volume itself, on a local disk: fast, so no copy
    on_disk = base | {"BOOTSTRAP_HYDRATE_DIR": str(tmp_path / "copies5")}
    assert said(on_disk) == "volume"
    fast = run_boot(on_disk)
    assert fast.returncode == 0, fast.output
    assert facts(fast, "hydrate")["plan"] == carried_out(fast) == "volume"
    assert ran_from(fast) == str(env_dir)
    assert seen == ["full", "used+read-ahead", "full+read-ahead", "used+later+read-ahead",
                    "reuse+read-ahead"]
