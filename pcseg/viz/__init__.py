"""Showing labelled clouds: Open3D window (``window``) and headless PNG rendering (``render``)."""
