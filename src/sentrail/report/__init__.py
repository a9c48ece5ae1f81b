"""Renderers: text for people, JSON for machines. They depend on the model only."""
