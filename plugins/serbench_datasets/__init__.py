"""serbench first-party plugin: datasets."""
