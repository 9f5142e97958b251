"""The voice library on real files: publishing by rename, what readers see meanwhile,
and which voices jobs may replace or delete."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from f5worker import voices
from f5worker.voices import VoiceError, VoiceLibrary

WAV = b"RIFF" + bytes(4000)


def library(tmp_path: Path) -> VoiceLibrary:
    bundled = tmp_path / "image-voices"
    bundled.mkdir()
    (bundled / "narrator.wav").write_bytes(WAV)
    (bundled / "narrator.txt").write_text("I narrate.\n")
    return VoiceLibrary(tmp_path / "volume-voices", bundled)


def test_add_list_delete(tmp_path: Path) -> None:
    lib = library(tmp_path)
    voice, replaced = lib.add("anna", WAV, "Hello, I am Anna.", {"duration_s": 3.2})
    assert not replaced and voice.audio.read_bytes() == WAV
    listed = lib.all()
    assert sorted(listed) == ["anna", "narrator"]
    assert listed["anna"].describe() == {"name": "anna", "ref_text": "Hello, I am Anna.",
                                         "duration_s": 3.2, "source": "added",
                                         "deletable": True}
    assert listed["narrator"].source == "bundled" and not listed["narrator"].deletable
    assert lib.delete("anna").name == "anna"
    assert sorted(lib.all()) == ["narrator"]
    assert not (tmp_path / "volume-voices" / "anna").exists()
    with pytest.raises(VoiceError, match="no voice 'anna'"):
        lib.delete("anna")


def test_an_existing_voice_is_replaced_only_when_asked(tmp_path: Path) -> None:
    lib = library(tmp_path)
    lib.add("anna", WAV, "First.", {})
    with pytest.raises(VoiceError, match="exists; set overwrite to true"):
        lib.add("anna", b"RIFF2", "Second.", {})
    assert lib.all()["anna"].text == "First."
    _, replaced = lib.add("anna", b"RIFF2", "Second.", {}, overwrite=True)
    assert replaced and lib.all()["anna"].text == "Second."
    assert lib.all()["anna"].audio.read_bytes() == b"RIFF2"


def test_bundled_and_provisioned_voices_cannot_be_deleted_or_replaced(tmp_path: Path) -> None:
    lib = library(tmp_path)
    lib.volume_dir.mkdir()
    (lib.volume_dir / "default.wav").write_bytes(WAV)  # placed by an operator
    (lib.volume_dir / "default.txt").write_text("Placed by hand.")
    assert lib.all()["default"].source == "provisioned"
    for name, source in (("narrator", "bundled"), ("default", "provisioned")):
        with pytest.raises(VoiceError, match=f"is a {source} voice and cannot be deleted"):
            lib.delete(name)
        with pytest.raises(VoiceError, match=f"is a {source} voice and cannot be replaced"):
            lib.add(name, WAV, "Mine now.", {}, overwrite=True)
    assert (lib.volume_dir / "default.wav").is_file()
    assert (tmp_path / "image-voices" / "narrator.wav").is_file()


def test_half_written_and_hidden_directories_are_not_voices(tmp_path: Path) -> None:
    lib = library(tmp_path)
    half = lib.volume_dir / "half"
    half.mkdir(parents=True)
    (half / "voice-1.wav").write_bytes(WAV)  # no voice.json: never published this way
    (lib.volume_dir / "notext.wav").write_bytes(WAV)  # a flat file without its text
    lib.add("whole", WAV, "Whole.", {})
    assert sorted(lib.all()) == ["narrator", "whole"]
    assert not list((lib.volume_dir / voices.STAGING).iterdir())


def test_one_voice_is_found_by_its_own_files_without_listing_the_library(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job names one voice: finding it must not list a library of a thousand voices on a
    network volume. With listing made impossible, each kind is still found."""
    lib = library(tmp_path)
    lib.add("anna", WAV, "Hello, I am Anna.", {})
    (lib.volume_dir / "ops.wav").write_bytes(WAV)
    (lib.volume_dir / "ops.txt").write_text("Provisioned by the operator.")

    def no_listing(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the library was listed")

    for name in ("iterdir", "glob", "rglob"):
        monkeypatch.setattr(Path, name, no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    monkeypatch.setattr(os, "scandir", no_listing)
    found = {name: lib.get(name) for name in ("anna", "ops", "narrator", "nobody")}
    assert {name: voice and voice.source for name, voice in found.items()} == {
        "anna": "added", "ops": "provisioned", "narrator": "bundled", "nobody": None}
    voice, audio = lib.read("anna") or (None, b"")
    assert voice is not None and audio == WAV


def test_a_stale_staging_leftover_is_swept_and_a_fresh_one_kept(tmp_path: Path) -> None:
    lib = library(tmp_path)
    staging = lib.volume_dir / voices.STAGING
    (staging / "dead.1").mkdir(parents=True)  # a worker killed mid-add, long ago
    old = time.time() - voices.STALE_S - 10
    os.utime(staging / "dead.1", (old, old))
    (staging / "busy.2").mkdir()  # another worker adding right now
    trash = lib.volume_dir / voices.TRASH
    (trash / "gone.3").mkdir(parents=True)  # a worker killed while deleting, long ago
    os.utime(trash / "gone.3", (old, old))
    lib.add("anna", WAV, "Hi.", {})
    assert sorted(p.name for p in staging.iterdir()) == ["busy.2"]
    assert not list(trash.iterdir())


def _adder(folder: str, worker: int, rounds: int) -> None:
    lib = VoiceLibrary(Path(folder))
    for i in range(rounds):
        name = f"v{worker}-{i}"
        lib.add(name, WAV + name.encode(), f"text of {name}", {"duration_s": 1.0})
        lib.add("shared", WAV + name.encode(), f"text of {name}", {}, overwrite=True)


def start(target: Callable[[str, int, int], None], folder: Path,
          rounds: int) -> list[multiprocessing.process.BaseProcess]:
    """Three real processes running ``target(folder, worker, rounds)`` at once."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=target, args=(str(folder), w, rounds)) for w in range(3)]
    for process in workers:
        process.start()
    return workers


def finish(workers: list[multiprocessing.process.BaseProcess]) -> None:
    for process in workers:
        process.join()
        assert process.exitcode == 0


def assert_one_publication(voice: voices.Voice, data: bytes) -> None:
    """The audio and the text of a voice come from the same add."""
    assert data == WAV + voice.text.removeprefix("text of ").encode()


def test_concurrent_adds_never_show_half_a_voice(tmp_path: Path) -> None:
    folder = tmp_path / "voices"
    adders = start(_adder, folder, 25)
    lib = VoiceLibrary(folder)
    listings = 0
    while any(p.is_alive() for p in adders) or listings == 0:
        for name in lib.all():
            found = lib.read(name)
            assert found is not None  # nothing deletes here: a listed voice stays readable
            assert_one_publication(*found)  # even for "shared", replaced all along
        listings += 1
    finish(adders)
    assert len(lib.all()) == 3 * 25 + 1
    assert not list((folder / voices.STAGING).iterdir())
    assert not (folder / voices.TRASH).exists()
    shared = lib.read("shared")
    assert shared is not None and shared[0].audio.parent == folder / "shared"
    assert listings > 1


def test_two_adds_of_one_new_name_one_wins(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lib = library(tmp_path)
    stage = lib._stage

    def stage_then_lose_the_race(*args: Any) -> tuple[Path, str]:
        staged = stage(*args)
        other, _ = stage("anna", WAV, "Other worker.", {}, ".wav")
        os.rename(other, lib.volume_dir / "anna")  # another worker publishes first
        return staged

    monkeypatch.setattr(lib, "_stage", stage_then_lose_the_race)
    with pytest.raises(VoiceError, match="added by another job at the same time"):
        lib.add("anna", WAV, "Me.", {})
    assert lib.all()["anna"].text == "Other worker."
    assert not list((lib.volume_dir / voices.STAGING).iterdir())


def test_a_replacement_racing_a_delete_still_publishes_a_whole_voice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = library(tmp_path)
    lib.add("anna", WAV, "First.", {})
    copy = voices._copy_synced

    def copy_then_get_deleted(source: Path, dest: Path) -> None:
        copy(source, dest)
        lib.delete("anna")  # another job deletes the voice between audio and voice.json

    monkeypatch.setattr(voices, "_copy_synced", copy_then_get_deleted)
    _, replaced = lib.add("anna", b"RIFF-second", "Second.", {}, overwrite=True)
    monkeypatch.undo()
    assert not replaced  # what it replaced was deleted first: it was published anew
    found = lib.read("anna")
    assert found is not None and found[0].text == "Second." and found[1] == b"RIFF-second"


def _churn(folder: str, worker: int, rounds: int) -> None:
    lib = VoiceLibrary(Path(folder))
    for i in range(rounds):
        if worker == 0:
            # Not there at times: a replacement may be in flight.
            with contextlib.suppress(VoiceError):
                lib.delete("shared")
        else:
            name = f"w{worker}-{i}"
            lib.add("shared", WAV + name.encode(), f"text of {name}", {}, overwrite=True)


def test_replacements_and_deletes_together_leave_only_whole_voices(tmp_path: Path) -> None:
    folder = tmp_path / "voices"
    workers = start(_churn, folder, 30)
    lib = VoiceLibrary(folder)
    while any(p.is_alive() for p in workers):
        found = lib.read("shared")
        if found is not None:
            assert_one_publication(*found)
    finish(workers)
    shared = folder / "shared"
    # Whatever the last word was, the name is usable: whole, or absent.
    assert not shared.exists() or lib.read("shared") is not None
    lib.add("shared", WAV, "After the storm.", {}, overwrite=True)
    assert lib.read("shared") == (lib.get("shared"), WAV)


def test_audio_left_by_racing_replacements_is_removed_once_old(tmp_path: Path) -> None:
    lib = library(tmp_path)
    voice, _ = lib.add("anna", WAV, "One.", {})
    orphan = voice.audio.parent / "voice-000000000000.wav"
    orphan.write_bytes(WAV)
    old = time.time() - voices.ORPHAN_S - 10
    os.utime(orphan, (old, old))
    fresh = voice.audio.parent / "voice-111111111111.wav"  # a replacement in progress
    fresh.write_bytes(WAV)
    replaced, _ = lib.add("anna", WAV, "Two.", {}, overwrite=True)
    assert sorted(p.name for p in voice.audio.parent.iterdir()) == sorted(
        [replaced.audio.name, fresh.name, voices.META])
