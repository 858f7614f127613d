"""The operator's entry points: the `wassla` CLI and the `wassla dev` stack launcher."""
