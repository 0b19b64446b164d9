"""radford's own commands besides LightningCLI's: one module each, imported when its command runs."""
