"""Music: symbolic (MIDI) composition with the shared transformer."""
