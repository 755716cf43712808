"""serbench first-party plugin: upstreams."""
