"""radford-igpt: Image GPT (Chen, Radford et al. 2020) as a radford plugin, built on radford's public API only."""
