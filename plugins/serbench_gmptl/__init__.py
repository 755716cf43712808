"""serbench first-party plugin: gmptl."""
