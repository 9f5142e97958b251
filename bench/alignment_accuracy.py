"""How close the aligner's word times are to known ones: a measurement, not a test.

Needs the real weights (MMS_FA's model.pt; not downloadable where this was written) and
recordings with hand- or corpus-labelled word boundaries, e.g. TIMIT's .WRD files or
Buckeye / LibriSpeech alignments converted to this layout:

    DATA/NAME.wav    mono speech, any sample rate
    DATA/NAME.json   [{"word": "hello", "start": 0.12, "end": 0.48}, ...] in order

The transcript given to the aligner is the labelled words joined by spaces, so entries
pair one to one. Reported: the absolute error of word starts and ends (median, mean, p90)
and the share within 20, 50 and 100 ms (20 ms is one MMS_FA frame).

Usage: python bench/alignment_accuracy.py WEIGHTS DATA [--arch MMS_FA] [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from f5worker import aligner


def read_wav(path: Path) -> tuple[object, int]:
    import soundfile

    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--arch", default="MMS_FA")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = aligner.load(aligner.read_params(args.arch), args.weights, args.device)
    errors: list[float] = []
    files = sorted(args.data.glob("*.json"))
    for truth_file in files:
        truth = json.loads(truth_file.read_text())
        wave, rate = read_wav(truth_file.with_suffix(".wav"))
        words = model.align(wave, rate, " ".join(entry["word"] for entry in truth))
        for got, want in zip(words, truth, strict=True):
            errors += [abs(got.start_s - want["start"]), abs(got.end_s - want["end"])]
    if not errors:
        print(f"no NAME.json + NAME.wav pairs in {args.data}", file=sys.stderr)
        return 2
    ordered = sorted(errors)
    within = {ms: sum(e <= ms / 1000 for e in errors) / len(errors) for ms in (20, 50, 100)}
    print(json.dumps({
        "files": len(files), "boundaries": len(errors), "arch": args.arch,
        "median_ms": round(statistics.median(errors) * 1000, 1),
        "mean_ms": round(statistics.fmean(errors) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        "within": {f"{ms}ms": round(share, 3) for ms, share in within.items()},
    }, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
