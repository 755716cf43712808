"""serbench first-party plugin: baselines."""
