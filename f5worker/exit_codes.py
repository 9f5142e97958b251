"""The F5-TTS app's own exit codes: a failed stage of this app ends the boot with its code.

They sit in the stage block 10-19 because they were there before the framework knew apps
(images and alerts read them); a new app takes its own from 30-63 (docs/exit-codes.md).
"""

from __future__ import annotations

import enum


class F5ExitCode(enum.IntEnum):
    AUDIO = 15
    MODEL = 16
    WARMUP = 17
