"""Tests on the real F5-TTS stack; a package so its conftest is not the top-level one."""
