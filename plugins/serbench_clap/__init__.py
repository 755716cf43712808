"""serbench first-party plugin: clap."""
