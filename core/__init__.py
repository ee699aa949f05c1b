"""Shared bottom layer: settings, canonical schemas, warehouse access. Imports nothing above."""
