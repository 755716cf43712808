"""serbench first-party plugin: contrastive."""
