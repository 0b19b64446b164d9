"""Recipes bundled with radford (YAML files; this file makes the folder a package)."""
