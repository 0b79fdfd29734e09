"""The realistic sample world behind ``epay sample``: billing extract, mandates and CCP accounts."""

from epay.sample.world import World, generate_world

__all__ = ["World", "generate_world"]
