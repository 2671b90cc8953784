"""Shared foundation: errors, artifacts and provenance, paths, devices, the model registry."""
