"""Offline evaluations shared by several models: linear probes, Frechet distance."""
