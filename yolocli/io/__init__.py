"""Inputs and outputs: sources, image and video reading, output folders and record formats."""
