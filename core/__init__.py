"""Shared bottom layer: settings, canonical schemas and warehouse access. Imports nothing above it."""
