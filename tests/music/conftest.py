"""The music tests' fixtures live in music_fixtures.py (importable by the tests, too)."""

from music_fixtures import drum_midi, empty_midi, midi_file, piece, run_luoxia, tiny_music_model  # noqa: F401
