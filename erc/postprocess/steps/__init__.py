"""The post-processing steps that ship with erc, one module each (docs/adding-a-step.md)."""
