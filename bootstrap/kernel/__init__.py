"""The framework's kernel: settings, apps, the stage contract and its loop, events."""
